import sys

try:
    from siray_cli.main import main
except KeyboardInterrupt:  # Ctrl-C while Python was still loading siray: nothing was sent
    sys.stderr.write("interrupted\n")
    raise SystemExit(130) from None

raise SystemExit(main())

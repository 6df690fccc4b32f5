from siray_cli.entry import main

raise SystemExit(main())

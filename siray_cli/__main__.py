from siray_cli.app import main

raise SystemExit(main())

from sam2_tracking.cli import main

raise SystemExit(main())

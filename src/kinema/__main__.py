from kinema.cli import main

raise SystemExit(main())

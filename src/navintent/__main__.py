from navintent.cli import main

raise SystemExit(main())

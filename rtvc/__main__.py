from rtvc.cli import main

raise SystemExit(main())

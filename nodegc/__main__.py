from nodegc.cli import main

raise SystemExit(main())

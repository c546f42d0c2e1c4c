from tools.killmatrix.cli import main

raise SystemExit(main())

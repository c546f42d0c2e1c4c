from tools.profiles.cli import main

raise SystemExit(main())

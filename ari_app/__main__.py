from ari_app.cli import main

raise SystemExit(main())

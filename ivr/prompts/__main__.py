from ivr.prompts import main

raise SystemExit(main())

"""`python -m catalog list [DIR] | validate PATH | schema`."""

from catalog.cli import main

raise SystemExit(main())

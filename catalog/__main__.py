"""`python -m catalog list [DIR] | validate PATH`."""

from catalog.cli import main

raise SystemExit(main())

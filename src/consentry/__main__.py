"""`python -m consentry` runs the command line."""

from consentry.cli import main

raise SystemExit(main())

"""`python -m bootlab` runs the CLI."""

import sys

from bootlab.cli.main import main

sys.exit(main())

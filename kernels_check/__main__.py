"""`python -m kernels_check` = `slothlab check` (see kernels_check/cli.py)."""

import sys

from kernels_check.cli import main

sys.exit(main())

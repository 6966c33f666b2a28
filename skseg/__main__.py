"""``python -m skseg``."""

import sys

from .cli import main

sys.exit(main())

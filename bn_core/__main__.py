"""``python -m bn_core``: see ``bn_core.cli``."""

import sys

from bn_core.cli import main

sys.exit(main())

"""``python -m cli ARGS`` is ``tonesweep ARGS`` (what tests and scripts run without the console script)."""

import sys

from cli.main import main

sys.exit(main())

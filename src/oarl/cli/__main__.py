"""``python -m oarl.cli COMMAND``: the same as the ``oarl`` script."""

import sys

from oarl.cli import main

sys.exit(main())

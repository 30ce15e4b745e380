"""``python -m pns_sio`` is the ``pns`` command."""

import sys

from .cli import main

sys.exit(main())

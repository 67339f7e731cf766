"""``python -m adalink`` (and ``accelerate launch -m adalink train ...``)."""

import sys

from .cli import main

sys.exit(main())

"""`python -m mmloop_runtime predict ...` (see mmloop_runtime.cli)."""

import sys

from mmloop_runtime.cli import main

sys.exit(main())

"""``python -m classifier``: the command line (``classifier.cli``); ``serve`` is the default."""

from __future__ import annotations

import sys

from classifier.cli import main

if __name__ == "__main__":
    sys.exit(main())

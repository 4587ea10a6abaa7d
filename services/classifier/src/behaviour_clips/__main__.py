"""Entry point of `python -m behaviour_clips`."""

from __future__ import annotations

import sys

from behaviour_clips.cli import main

sys.exit(main())

"""Test configuration for ``paglets.config``: the paglet classes named in test launch files live in
``_launch_classes.py`` and are imported by name, so this directory must be importable."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

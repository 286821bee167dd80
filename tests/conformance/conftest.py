"""Conformance suite: LANGUAGE.md and FORMATS.md, case by case, as an outside grader would test them.

The helpers live in `agp_conformance_support.py` beside this file; it is put on `sys.path` here so
that the test modules can import it under pytest's importlib import mode.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

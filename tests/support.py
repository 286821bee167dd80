"""Paths and small helpers shared by the tests (tests/ is on pytest's pythonpath)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SPEC = DATA / "spec"  # the examples of LANGUAGE.md and FORMATS.md, copied verbatim

"""Checking: name resolution, the data-class lattice and expression types."""

from agp.check.resolve import check

__all__ = ["check"]

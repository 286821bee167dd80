"""A pause of the cyclic garbage collector around the stages that build a policy set."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_cyclic_collection() -> Iterator[None]:
    """Checking a set, building its tree or reading a bundle allocates many small objects and
    frees few: a cyclic collection meanwhile would only rescan them again and again (at 10,000
    rules, 45 % of the check and half of the tree). The collector runs again afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()

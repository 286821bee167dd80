"""The small examples in docstrings run (STYLE.md habit 9)."""

import doctest
import importlib
import pkgutil

import pytest

import agp


def _modules():
    for info in pkgutil.walk_packages(agp.__path__, "agp."):
        if info.name.startswith(("agp.lsp", "agp.cli")):
            continue
        yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0

"""The checker's share of load time (issue 15 item 2): the cyclic collector is paused while a
set is checked (it would rescan the growing AST and types again and again: 45 % of the check
at 10,000 rules), and runs again afterwards, also when the check fails."""

from __future__ import annotations

import gc

import pytest

from agp.check import resolve
from agp.loader import check_sources
from agp.source import Source

GOOD = "intent read\ntool t { intent read }\npermit p on t\n"


@pytest.mark.parametrize("text", [GOOD, GOOD + "permit p on t\n"])  # the second: a duplicate
def test_the_check_runs_with_the_cyclic_collector_paused_and_restores_it(monkeypatch, text):
    seen = []
    collect = resolve._Checker.collect

    def spy(self):
        seen.append(gc.isenabled())
        return collect(self)

    monkeypatch.setattr(resolve._Checker, "collect", spy)
    assert gc.isenabled()
    policy, diagnostics = check_sources([Source("p.agp", text)])
    assert seen == [False] and gc.isenabled()
    assert (policy is None) == any(d.is_error for d in diagnostics)


def test_a_check_called_with_the_collector_off_leaves_it_off():
    gc.disable()
    try:
        check_sources([Source("p.agp", GOOD)])
        assert not gc.isenabled()
    finally:
        gc.enable()

"""LANGUAGE.md §4: quantifiers over sets (`data`, `intent`, `task.seen`, a history item's `data`)
take the set's names in name order, each as a class or intent that compares through the lattice
and is found in other sets. Both evaluators; the checker types the items."""

from __future__ import annotations

import pytest

import agp
from agp.loader import check_sources
from agp.source import Source

POLICY = """
dataclass public
dataclass pii > public
dataclass secret > pii
dataclass untrusted
intent read
intent send

tool t { intent read }
task k { tools t }

forbid two_sensitive on t when count(c in data: c >= pii) >= 2
forbid sends on t when any(i in intent: i == send)
ask all_seen_low on t in k when len(task.seen) > 0 and all(c in task.seen: c <= pii)
forbid history_taint on t in k
  when any(h in task.history if h.decision == "allow": any(c in h.data: c == untrusted))
permit ok on t
"""

NOW = "2026-11-28T10:00:00Z"


@pytest.fixture(scope="module", params=[False, True], ids=["reference", "compiled"])
def engine(request):
    policy, diagnostics = check_sources([Source("q.agp", POLICY)])
    assert policy is not None, diagnostics
    return agp.Engine(policy, compiled=request.param)


def decide(engine, **fields):
    return engine.decide({"agent": {"id": "a"}, "tool": "t", "now": NOW, **fields})


def item(data, decision="allow"):
    return {"tool": "t", "data": data, "decision": decision, "at": "2026-11-28T09:00:00Z"}


def test_items_of_data_compare_through_the_lattice(engine):
    assert decide(engine, data=["pii", "secret"]).rules == ["two_sensitive"]
    assert decide(engine, data=["pii", "public"]).rules == ["ok"]


def test_items_of_intent_are_intents(engine):
    assert decide(engine, intent=["send"]).rules == ["sends"]
    assert decide(engine).rules == ["ok"]


def test_items_of_task_seen_and_of_a_history_item(engine):
    task = {"kind": "k"}
    assert decide(engine, task={**task, "seen": ["pii"]}).decision == "ask"
    assert decide(engine, task={**task, "seen": ["pii", "secret"]}).rules == ["ok"]
    tainted = {**task, "history": [item(["public"]), item(["untrusted", "pii"])]}
    assert decide(engine, task=tainted).rules == ["history_taint"]
    denied = {**task, "history": [item(["untrusted"], decision="deny")]}
    assert decide(engine, task=denied).rules == ["ok"]


def test_the_checker_types_set_items():
    bad = POLICY + 'forbid wrong on t when any(c in data: c == "pii" or c + 1 > 2)\n'
    policy, diagnostics = check_sources([Source("q.agp", bad)])
    assert policy is None
    assert any(d.code == "type-mismatch" for d in diagnostics)
    not_a_set = POLICY + "forbid wrong2 on t when any(x in tool: true)\n"
    _, diagnostics = check_sources([Source("q.agp", not_a_set)])
    assert [d.message for d in diagnostics if d.code == "type-mismatch"] == [
        "`any` needs a list or a set, not string"]

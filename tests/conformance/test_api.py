"""FORMATS.md "Python API": load, decide (never raises, thread-safe), Decision fields."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from support import SPEC, load_data, load_text

import agp

REQUEST = json.loads((SPEC / "request.json").read_text())


@pytest.mark.parametrize("bad", [[], "request", 5, None, {"agent": "x", "tool": "y"}],
                         ids=["list", "string", "number", "none", "agent-not-object"])
def test_decide_never_raises(bad):
    d = load_data("spec").decide(bad)
    assert d.decision == "deny"
    assert list(d.rules) == ["request.invalid"]
    assert d.errors
    assert d.ttl == 0
    assert d.allowed is False


def test_now_defaults_to_wall_clock():
    engine = load_text("task job { ttl 1h }\npermit p\n")
    d = engine.decide({"agent": {"id": "a"}, "tool": "t",
                       "task": {"kind": "job", "started_at": "2000-01-01T00:00:00Z"}})
    assert d.decision == "deny"
    assert "task.expired" in d.rules
    d = engine.decide({"agent": {"id": "a"}, "tool": "t"})
    assert (d.decision, list(d.rules)) == ("allow", ["p"])


def test_decide_is_pure():
    engine = load_data("spec")
    request = json.loads(json.dumps(REQUEST))
    first = engine.decide(request)
    assert request == REQUEST, "decide must not modify its input"
    second = engine.decide(request)
    assert (first.decision, first.ttl, list(first.rules), first.policy) == \
        (second.decision, second.ttl, list(second.rules), second.policy)


def test_decide_from_many_threads():
    engine = load_data("spec")
    requests = []
    for amount in range(0, 200, 7):
        r = json.loads(json.dumps(REQUEST))
        r["args"]["amount"] = amount
        requests.append(r)
    expected = [("allow" if r["args"]["amount"] <= 100 else "ask") for r in requests]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(5):
            got = list(pool.map(lambda r: engine.decide(r).decision, requests))
            assert got == expected


def test_policy_error_type():
    assert issubclass(agp.PolicyError, Exception)


def test_decision_json_shape():
    d = load_data("spec").decide(REQUEST)
    dumped = d.model_dump() if hasattr(d, "model_dump") else dict(d)
    for field in ("decision", "ttl", "rules", "reasons", "errors", "policy"):
        assert field in dumped
    assert isinstance(d.ttl, int)

"""The warm decision path (issue 15 item 3): a Decision that is not a pydantic model but keeps
its API, the clock read only when something needs it, identities of asserted ids kept, and the
TTL of a request without task and chain from the permits' precomputed bounds. Each is held equal
to the reference evaluator, which takes none of these shortcuts."""

from __future__ import annotations

import copy
import pickle
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError
from support import load_text

import agp
from agp.compile import compile_policy
from agp.compile import evaluator as compiled_evaluator
from agp.compile.evaluator import Context
from agp.model import Decision

# ---- Decision: the public API of the pydantic model it replaces ------------------------------


def test_a_decision_built_by_keywords_has_the_defaults_and_json_shape():
    d = Decision(decision="allow", ttl=60, rules=["p"])
    assert (d.reasons, d.errors, d.policy, d.grant) == ([], [], "", None)
    assert d.allowed and not Decision(decision="ask", ttl=0, rules=["a"]).allowed
    assert d.to_json() == {"decision": "allow", "ttl": 60, "rules": ["p"], "reasons": [],
                           "errors": [], "policy": ""}
    assert d.model_dump() == {**d.to_json(), "grant": None}
    assert Decision(decision="allow", ttl=1, rules=[], grant="tok").to_json()["grant"] == "tok"


@pytest.mark.parametrize("fields", [
    {"decision": "maybe", "ttl": 0, "rules": []},
    {"decision": "deny", "ttl": "0", "rules": []},  # strict: no coercion
    {"decision": "deny", "ttl": 0, "rules": "r"},
    {"decision": "deny", "ttl": 0},
    {"decision": "deny", "ttl": 0, "rules": [], "extra": 1},
])
def test_a_decision_from_outside_is_validated_as_strictly_as_the_model(fields):
    with pytest.raises(ValidationError):
        Decision.model_validate(fields)
    with pytest.raises((ValidationError, TypeError)):
        Decision(**fields)


def test_a_decision_round_trips_through_its_json_and_pickle():
    d = Decision(decision="deny", ttl=0, rules=["f"], reasons=["no"], errors=["e"], policy="h")
    assert Decision.model_validate(d.to_json()) == d
    assert pickle.loads(pickle.dumps(d)) == d
    assert copy.deepcopy(d) == d and type(copy.copy(d)) is Decision
    assert repr(d) == ("Decision(decision='deny', ttl=0, rules=['f'], reasons=['no'], "
                       "errors=['e'], policy='h', grant=None)")


def test_a_decision_is_immutable_and_unhashable_like_the_frozen_model():
    d = Decision(decision="allow", ttl=5, rules=["p"])
    with pytest.raises(AttributeError):
        d.ttl = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del d.rules
    with pytest.raises(TypeError):  # its lists, as the frozen model's
        hash(d)
    copied = d.model_copy(update={"grant": "tok"})
    assert (copied.grant, d.grant, copied.rules) == ("tok", None, ["p"])
    with pytest.raises(TypeError):
        d.model_copy(update={"nope": 1})


def test_equality_compares_every_field_and_the_type():
    d = Decision(decision="allow", ttl=5, rules=["p"])
    assert d == Decision(decision="allow", ttl=5, rules=["p"])
    assert d != Decision(decision="allow", ttl=5, rules=["p"], grant="g")
    assert d != d.to_json()


# ---- the evaluators' decisions --------------------------------------------------------------

POLICY = """
    dataclass public
    dataclass secret > public
    intent read
    tool t.fast { intent read }
    tool t.clock { intent read }
    tool t.two { intent read }
    defaults { ttl 10m  max_ttl 5m }
    permit fast on t.fast
    permit clock on t.clock when hour(now) >= 0
    permit two_a on t.two ttl 2m
    permit two_b on t.two ttl 90s because "short"
    permit two_c on t.two
"""


def engines() -> tuple[agp.Engine, agp.Engine]:
    return load_text(POLICY), agp.Engine(load_text(POLICY).policy, compiled=False)


def test_compiled_decisions_are_decisions_equal_to_the_reference():
    fast, ref = engines()
    for tool in ("t.fast", "t.clock", "t.two", "t.none"):
        for request in ({"agent": {"id": "a"}, "tool": tool},
                        agp.Request.model_validate({"agent": {"id": "a"}, "tool": tool})):
            got = fast.decide(request)
            assert type(got) is Decision and got == ref.decide(request)


def test_the_ttl_without_task_and_chain_is_the_least_permit_bound_rounded_down():
    fast, ref = engines()
    request = {"agent": {"id": "a"}, "tool": "t.two", "now": "2026-01-01T00:00:00Z"}
    got = fast.decide(request)
    assert (got.decision, got.ttl, got.rules, got.reasons) == (
        "allow", 90, ["two_a", "two_b", "two_c"], ["short"])
    assert got == ref.decide(request)
    assert fast.decide({**request, "tool": "t.fast"}).ttl == 300  # the default within max_ttl


def test_the_clock_is_read_only_when_a_rule_or_the_envelope_needs_it(monkeypatch):
    fast, ref = engines()
    reads = []

    def clock(tz):
        reads.append(tz)
        return datetime(2026, 1, 1, tzinfo=timezone.utc)

    monkeypatch.setattr(compiled_evaluator, "_clock", clock)
    evaluator = fast.evaluator
    assert evaluator.decide({"agent": {"id": "a"}, "tool": "t.fast"}).allowed
    assert reads == []  # no rule of t.fast reads `now`, and nothing else does
    assert evaluator.decide({"agent": {"id": "a"}, "tool": "t.clock"}).allowed
    assert len(reads) == 1  # `now` in a condition
    task = {"kind": "undeclared"}
    denied = evaluator.decide({"agent": {"id": "a"}, "tool": "t.fast", "task": task})
    assert len(reads) == 2 and denied.rules == ["task.unknown"]  # the envelope of a task


def test_identities_of_asserted_ids_are_kept_bounded_and_an_svid_is_never_taken_from_them(
        monkeypatch):
    fast, ref = engines()
    monkeypatch.setattr(Context, "FUNCTIONS", 8)
    evaluator = compile_policy(fast.policy)
    for k in range(50):
        request = {"agent": {"id": f"agent-{k}"}, "tool": "t.fast"}
        assert evaluator.decide(request) == ref.decide(request)
    assert 0 < len(evaluator._asserted) <= 8
    with_svid = {"agent": {"id": "agent-49", "svid": "x.y.z"}, "tool": "t.fast"}
    refused = evaluator.decide(with_svid)
    assert refused.decision == "deny" and "identity.invalid" in refused.rules
    assert refused == ref.decide(with_svid)

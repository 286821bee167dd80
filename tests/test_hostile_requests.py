"""No request makes `decide` raise, and no malformed request is allowed."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import SPEC

import agp
from agp.model import RequestError, parse_request

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.sampled_from([10**400, -(10**309), float("nan"), float("-inf")]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=12,
)
timestamps = st.sampled_from(["2026-11-28T10:02:00Z", "2026-11-28T10:00:00+01:00", "2026-11-28",
                              "yesterday", "2026-02-30T00:00:00Z", "9999-12-31T23:59:59Z", 5,
                              "2026-11-28T10:05:00Z", "0001-01-01T00:30:00+01:00",
                              "1899-12-31T23:59:59Z", "8999-12-31T23:59:59Z"])
hops = st.fixed_dictionaries(
    {"principal": st.sampled_from(["user:alice", "spiffe://acme.com/agents/support-bot",
                                   "spiffe://acme.com/agents/billing/eu-1", ""]),
     "kind": st.sampled_from(["human", "agent", "service", "", "Agent", "bot"])},
    optional={"at": timestamps,
              "scope": st.fixed_dictionaries({}, optional={
                  "tools": st.lists(st.sampled_from(["payments.*", "crm.lookup", "*"]), max_size=2),
                  "intents": st.lists(st.sampled_from(["read", "payment", "nope"]), max_size=2),
                  "data": st.sampled_from(["pii", "public", "nope"]),
                  "ttl": st.sampled_from(["5m", 30, -1, "10min", "1h30m", 1e20, 1e308,
                                          "999999999d", 10**400])}),
              "extra": json_values})
requests = st.fixed_dictionaries(
    {},
    optional={
        "agent": st.fixed_dictionaries({"id": st.sampled_from([
            "spiffe://acme.com/agents/support-bot", "spiffe://acme.com/agents/billing/eu-1", 7])},
            optional={"attrs": json_values}),
        "task": st.fixed_dictionaries({"kind": st.sampled_from(["support_ticket", "nope", 3])},
                                      optional={"id": st.text(max_size=3), "params": json_values,
                                                "started_at": timestamps}),
        "chain": st.lists(hops, max_size=4),
        "tool": st.sampled_from(["payments.refund", "crm.lookup", "http.get", "x", None, "",
                                 "payments.refund\n", "crm lookup"]),
        "intent": st.lists(st.sampled_from(["read", "egress", "payment", "unknown"]), max_size=3),
        "args": st.dictionaries(st.sampled_from(["amount", "customer", "note"]),
                                st.integers(-5, 500) | st.text(max_size=4) | json_values,
                                max_size=3),
        "data": st.lists(st.sampled_from(["pii", "restricted", "public", "secret"]), max_size=3),
        "target": st.dictionaries(st.sampled_from(["host", "external"]),
                                  st.booleans() | st.text(max_size=4), max_size=2) | json_values,
        "context": json_values,
        "now": timestamps,
        "bogus": json_values,
    },
)


@pytest.fixture(scope="module")
def engine():
    return agp.load([SPEC / "declarations.agp", SPEC / "rules.agp"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests)
def test_random_requests_never_raise_and_malformed_never_allow(engine, request):
    decision = engine.decide(request)
    assert decision.decision in ("allow", "deny", "ask")
    json.dumps(decision.to_json())
    try:
        parse_request(request)
    except RequestError:
        assert decision.decision == "deny"
        assert decision.rules == ["request.invalid"]
        assert decision.errors and decision.ttl == 0


@pytest.mark.parametrize("request_value", [
    None, [], "x", 5, {"agent": {"id": "a"}, "tool": "t", "args": {"a": 1e308 * 10}},
    {"agent": {"id": "a"}, "tool": "t", "args": {"deep": json.loads("[" * 500 + "]" * 500)}},
    {"agent": {"id": "a"}, "tool": "t", "args": {"big": "x" * (2 * 1024 * 1024)}},
    {"agent": {"id": "a"}, "tool": "t", "args": {"list": list(range(20_000))}},
    {"agent": {"id": "a"}, "tool": "t", "now": "2026-11-28T10:00:00"},  # no time zone
    {"agent": {"id": "a"}, "tool": "t", "chain": [{"principal": "a", "kind": "agent",
                                                    "scope": {"ttl": "99999999999d"}}]},
    {"agent": {"id": "a"}, "tool": "t", "args": {"a": float("nan")}},
    {"agent": {"id": "a"}, "tool": "t", "args": {"a": 10**400}},
    {"agent": {"id": "a"}, "tool": "t", "chain": [{"principal": "a", "kind": "Agent"}]},
    {"agent": {"id": "a"}, "tool": "t", "now": "2026-11-28T10:00:00Z",
     "chain": [{"principal": "a", "kind": "agent", "at": "2026-11-28T10:00:01Z"}]},
    {"agent": {"id": "a"}, "tool": "t", "now": "9999-12-31T23:59:59Z"},
])
def test_hostile_values_are_denied(engine, request_value):
    decision = engine.decide(request_value)
    assert decision.decision == "deny"


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("oversize", [
    {"note": "x" * (1024 * 1024 + 1)}, {"note": list(range(10_001))},
    {"note": json.loads("[" * 40 + "]" * 40)},
])
def test_a_request_over_a_limit_is_denied_even_when_a_rule_would_allow(compiled, oversize):
    engine = agp.load(SPEC, compiled=compiled)
    request = json.loads((SPEC / "request.json").read_text())
    assert engine.decide(request).decision == "allow"
    request["args"].update(oversize)
    decision = engine.decide(request)
    assert (decision.decision, decision.rules) == ("deny", ["request.invalid"])

"""The compiled evaluator's request validation is exactly as strict as agp.model.parse_request.

`fast_request` may decline (return None) and leave a request to pydantic; whenever it accepts,
pydantic must accept too and build the same values. On JSON-shaped input it must decline only
what pydantic rejects, so the fast path is taken for every valid JSON request.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agp.compile.request import fast_request
from agp.model import RequestError, SessionSummary, parse_request

# The bounds of docs/limits.md, "Values", on both sides of each edge.
EDGE_NUMBERS = [math.nan, math.inf, -math.inf, -0.0, 1.7976931348623157e308, 10**400,
                2**1024 - 2**970 - 1, 2**1024 - 2**970, -(2**1024 - 2**970), 2**53 + 1]
PARIS = ZoneInfo("Europe/Paris")
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-2, 2),
                        st.sampled_from(["", "a", "read", "pii"]), st.sampled_from(EDGE_NUMBERS),
                        st.floats())
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "x"]), inner,
                                                 max_size=3)), max_leaves=6)
free_object = st.dictionaries(st.sampled_from(["role", "amount", "host", "external", "k"]),
                              json_value, max_size=3)
timestamps = st.one_of(
    st.sampled_from(["2026-11-28T10:00:00Z", "2026-11-28T10:00:00.123456789+02:00",
                     "2026-11-28 10:00:00z", "2026-02-30T10:00:00Z", "2026-11-28T10:00:00",
                     "yesterday", "1900-01-01T00:00:00Z", "1899-12-31T23:59:59Z",
                     "8999-12-31T23:59:59.999999Z", "9000-01-01T00:00:00Z",
                     "9000-01-01T00:30:00+01:00", "0001-01-01T00:30:00+01:00",
                     "9999-12-31T23:59:59-01:00"]),
    st.sampled_from([datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=PARIS),
                     datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1),
                     datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-2)))]))
durations = st.one_of(st.sampled_from(["5m", "1h30m", "10min", "", "0s", "36500d", "36501d",
                                       "999999999d"]),
                      st.integers(-3, 100), st.floats(allow_nan=True), st.booleans(),
                      st.sampled_from([36_500 * 86400, 36_500 * 86400 + 1, 1e20, 10**400,
                                       timedelta(days=36_501), timedelta(seconds=-1),
                                       timedelta(minutes=5)]),
                      st.sampled_from(EDGE_NUMBERS))
strings = st.lists(st.sampled_from(["read", "pii", "egress", ""]), max_size=3)


def _near(valid: dict, wrong: st.SearchStrategy) -> st.SearchStrategy:
    """The valid object, or the same with one field removed, replaced or added."""
    def mutate(args):
        obj, key, how, value = args
        obj = dict(obj)
        if how == 0 and key in obj:
            del obj[key]
        elif how == 1:
            obj[key] = value
        elif how == 2:
            obj["extra_" + key] = value
        return obj
    keys = sorted(valid) or ["x"]
    return st.one_of(
        st.just(valid),
        st.tuples(st.just(valid), st.sampled_from(keys), st.integers(0, 2), wrong).map(mutate))


@st.composite
def scope(draw):
    valid = {k: v for k, v in {
        "tools": draw(st.one_of(st.none(), st.lists(st.sampled_from(["crm.*", "a"]),
                                                     max_size=2))),
        "intents": draw(st.one_of(st.none(), strings)),
        "data": draw(st.one_of(st.none(), st.sampled_from(["pii", "public"]))),
        "ttl": draw(st.one_of(st.none(), durations)),
    }.items() if draw(st.booleans())}
    return draw(_near(valid, json_value))


@st.composite
def hop(draw):
    valid = {"principal": draw(st.sampled_from(["user:alice", "spiffe://x/bot", ""])),
             "kind": draw(st.sampled_from(["human", "agent", "service", "", "Agent", "agent "]))}
    if draw(st.booleans()):
        valid["at"] = draw(st.one_of(st.none(), timestamps))
    if draw(st.booleans()):
        valid["scope"] = draw(st.one_of(st.none(), scope()))
    return draw(_near(valid, json_value))


@st.composite
def history_item(draw):
    valid = {"tool": draw(st.sampled_from(["crm.lookup", "", "a b"])),
             "decision": draw(st.sampled_from(["allow", "deny", "ask", "Allow", ""])),
             "at": draw(timestamps)}
    for key, strat in (("intent", strings), ("data", strings), ("args", free_object)):
        if draw(st.booleans()):
            valid[key] = draw(strat)
    return draw(_near(valid, json_value))


@st.composite
def task(draw):
    valid = {"kind": draw(st.sampled_from(["support_ticket", "x"]))}
    for key, strat in (("id", st.one_of(st.none(), st.just("t-1"))),
                       ("params", free_object), ("objective", st.one_of(st.none(), st.just("o"))),
                       ("started_at", st.one_of(st.none(), timestamps)),
                       ("seen", st.one_of(st.none(), strings)),
                       ("history", st.one_of(st.none(), st.lists(history_item(), max_size=3)))):
        if draw(st.booleans()):
            valid[key] = draw(strat)
    return draw(_near(valid, json_value))


@st.composite
def requests(draw):
    agent = {"id": draw(st.sampled_from(["spiffe://x/bot", ""]))}
    if draw(st.booleans()):
        agent["svid"] = draw(st.sampled_from(["eyJ.a.b", ""]))
        if draw(st.booleans()):
            del agent["id"]
    if draw(st.booleans()):
        agent["attrs"] = draw(free_object)
    valid = {"agent": draw(_near(agent, json_value)),
             "tool": draw(st.sampled_from(["crm.lookup", "payments.refund", "", "a b", "a\tb",
                                           "x\x00", "a\u200bb", "a\xa0b", "é.ü"]))}
    optional = {
        "task": st.one_of(st.none(), task()), "chain": st.lists(hop(), max_size=3),
        "intent": strings, "args": free_object, "data": strings,
        "target": st.one_of(st.none(), free_object), "context": free_object,
        "now": st.one_of(st.none(), timestamps,
                         st.just(datetime(2026, 1, 1, tzinfo=timezone.utc)),
                         st.just(datetime(2026, 1, 1))),
    }
    for key, strat in optional.items():
        if draw(st.booleans()):
            valid[key] = draw(strat)
    return draw(_near(valid, st.one_of(json_value, st.just(("tuple",)), st.just(1.5))))


def _pydantic(value):
    try:
        return parse_request(value)
    except RequestError:
        return None


def same(fast, model) -> bool:
    """Every field the evaluators read, compared between the two representations."""
    def hop_eq(a, b):
        if (a.principal, a.kind, a.at) != (b.principal, b.kind, b.at):
            return False
        if (a.scope is None) != (b.scope is None):
            return False
        return a.scope is None or a.scope.model_dump(exclude_none=True) == \
            b.scope.model_dump(exclude_none=True)

    if (fast.tool, fast.intent, fast.args, fast.data, fast.target, fast.context, fast.now) != (
            model.tool, model.intent, model.args, model.data, model.target, model.context,
            model.now):
        return False
    if (fast.agent.id, fast.agent.svid, fast.agent.attrs) != (
            model.agent.id, model.agent.svid, model.agent.attrs):
        return False
    if (fast.task is None) != (model.task is None):
        return False
    if fast.task is not None:
        a, b = fast.task, model.task
        if (a.kind, a.id, a.params, a.objective, a.started_at, a.seen) != (
                b.kind, b.id, b.params, b.objective, b.started_at, b.seen):
            return False
        fields = ("tool", "intent", "data", "args", "decision", "at")
        if [[getattr(h, f) for f in fields] for h in a.history] != \
                [[getattr(h, f) for f in fields] for h in b.history]:
            return False
        if a.history.summary != SessionSummary.of(b.history):
            return False
    return len(fast.chain) == len(model.chain) and all(
        hop_eq(a, b) for a, b in zip(fast.chain, model.chain, strict=True))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_fast_path_is_exactly_as_strict_as_pydantic(value):
    fast = fast_request(value)
    model = _pydantic(value)
    if fast is not None:
        assert model is not None, "the fast path accepted a request pydantic rejects"
        assert same(fast, model)
    elif model is not None:
        # Declining is allowed only for input that is not plain JSON (a datetime or timedelta
        # object), or not small (then pydantic applies agp.limits, which the fast path does not
        # walk).
        assert not _plain(value) or not _small(value), (
            "the fast path declined a valid small request")


def _plain(value) -> bool:
    """Only what JSON can say (no datetime or timedelta objects, and no tuples)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (datetime, timedelta, tuple)):
            return False
        if isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
    return True


def _small(value) -> bool:
    """The documented reach of the fast path: short strings and lists, flat free-form objects."""
    from agp.compile.request import SMALL_LIST, SMALL_STRING

    task = value.get("task") if isinstance(value.get("task"), dict) else {}
    agent = value.get("agent") if isinstance(value.get("agent"), dict) else {}
    for free in (agent.get("attrs"), value.get("args"), value.get("context"),
                 value.get("target"), task.get("params")):
        if isinstance(free, dict) and (len(free) > SMALL_LIST or any(
                isinstance(v, (dict, list)) for v in free.values())):
            return False
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str) and len(v) > SMALL_STRING:
            return False
        if isinstance(v, list):
            if len(v) > SMALL_LIST:
                return False
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
    return True


def test_fast_path_leaves_big_requests_to_the_limits():
    base = {"agent": {"id": "a"}, "tool": "t"}
    for big in ({**base, "args": {"s": "x" * (2 * 1024 * 1024)}},
                {**base, "args": {"l": list(range(20_000))}},
                {**base, "tool": "t" * (2 * 1024 * 1024)},
                {**base, "intent": ["read"] * 20_000}):
        assert fast_request(big) is None
        assert _pydantic(big) is None  # denied by the limits, as the reference does


def test_fast_path_takes_the_documented_request():
    value = {
        "agent": {"id": "spiffe://acme.com/agents/billing/eu-1", "attrs": {"model": "x"}},
        "task": {"id": "t-81", "kind": "support_ticket", "params": {"customer": "c-42"},
                 "objective": "Refund", "started_at": "2026-11-28T10:00:00Z"},
        "chain": [{"principal": "user:alice", "kind": "human"},
                  {"principal": "spiffe://acme.com/agents/billing/eu-1", "kind": "agent",
                   "at": "2026-11-28T10:01:00Z",
                   "scope": {"tools": ["payments.refund"], "ttl": "5m"}}],
        "tool": "payments.refund", "intent": ["payment"], "args": {"amount": 40},
        "data": ["pii"], "target": {"external": True}, "context": {},
        "now": "2026-11-28T10:02:00Z",
    }
    fast = fast_request(value)
    assert fast is not None and same(fast, parse_request(value))
    assert fast.chain[1].scope.ttl == timedelta(minutes=5)


def test_fast_path_declines_what_pydantic_refuses():
    for bad in ({"agent": {"id": "a"}, "tool": 5}, {"agent": {"id": "a"}, "tool": "t", "x": 1},
                {"agent": {"id": "a"}, "tool": "t", "intent": "read"},
                {"agent": {"id": "a"}, "tool": "t", "args": {1: 2}},
                {"agent": {"id": "a"}, "tool": "t", "chain": [{"principal": "", "kind": "h"}]},
                {"agent": {"id": "a"}, "tool": "t", "now": "2026-11-28T10:00:00"}):
        assert fast_request(bad) is None
        assert _pydantic(bad) is None


def test_fast_path_declines_values_outside_the_bounds():
    base = {"agent": {"id": "a"}, "tool": "t"}
    for bad in ({**base, "args": {"amount": math.nan}}, {**base, "context": {"x": math.inf}},
                {**base, "target": {"x": -math.inf}}, {**base, "args": {"x": 10**400}},
                {**base, "args": {"x": 2**1024 - 2**970}},
                {**base, "agent": {"id": "a", "attrs": {"x": math.nan}}},
                {**base, "task": {"kind": "k", "params": {"x": math.nan}}},
                {**base, "tool": "a b"}, {**base, "tool": ""},
                {**base, "chain": [{"principal": "p", "kind": "Agent"}]},
                {**base, "now": "9000-01-01T00:00:00Z"},
                {**base, "now": "0001-01-01T00:30:00+01:00"},
                {**base, "chain": [{"principal": "p", "kind": "agent", "scope": {"ttl": 1e20}}]},
                {**base, "chain": [{"principal": "p", "kind": "agent",
                                    "scope": {"ttl": "36501d"}}]}):
        assert fast_request(bad) is None, bad
        assert _pydantic(bad) is None, bad


def test_fast_path_converts_times_to_utc_as_pydantic_does():
    value = {"agent": {"id": "a"}, "tool": "t", "now": "2026-11-28T11:00:00+01:00",
             "chain": [{"principal": "a", "kind": "service",
                        "at": datetime(2026, 11, 28, 10, 30, tzinfo=PARIS)}]}
    fast = fast_request(value)
    assert fast is not None and same(fast, parse_request(value))
    assert fast.now == datetime(2026, 11, 28, 10, tzinfo=timezone.utc)
    assert fast.now.tzinfo is fast.chain[0].at.tzinfo is timezone.utc


def test_one_validator_per_set_of_fields_whatever_their_order():
    from agp.compile import request as fast

    a = {"agent": {"id": "a"}, "tool": "t", "args": {"x": 1}, "data": ["pii"]}
    b = {"data": ["pii"], "args": {"x": 1}, "tool": "t", "agent": {"id": "a"}}
    assert fast_request(a) is not None and fast_request(b) is not None
    assert fast._SHAPES[frozenset(a)] is fast._SHAPES[frozenset(b)]
    assert same(fast_request(b), parse_request(b))
    # The same validator declines what its fields hold wrongly, and pydantic refuses it too.
    for bad in ({**b, "data": ["pii", 1]}, {**b, "args": {"x": math.inf}}, {**b, "tool": "a b"},
                {**b, "agent": {"id": "a", "role": "x"}}, {**b, "agent": {"svid": None}}):
        assert fast_request(bad) is None and _pydantic(bad) is None, bad
    # A set of fields no valid request has generates nothing; the memo holds only sets of the
    # known fields with `agent` and `tool`, at most 2**8 of them.
    before = len(fast._SHAPES)
    for odd in ({**a, "extra": 1}, {"agent": {"id": "a"}}, {"tool": "t", "args": {}}, {1: 2}):
        assert fast_request(odd) is None
    assert len(fast._SHAPES) == before
    assert all(s <= fast._REQUEST_KEYS and {"agent", "tool"} <= s for s in fast._SHAPES)


def test_every_validator_is_as_strict_as_pydantic_on_each_field():
    """Each of the 2**8 sets of fields, with every field valid, then with each field wrong."""
    import itertools

    valid = {"intent": ["read"], "data": ["pii"], "args": {"a": 1.5}, "context": {"c": None},
             "target": {"external": True}, "task": {"kind": "k"},
             "chain": [{"principal": "p", "kind": "agent"}], "now": "2026-11-28T10:00:00Z"}
    wrong = {"agent": {"id": 5}, "tool": "", "intent": "read", "data": [None],
             "args": {"a": math.nan}, "context": [], "target": {"t": -math.inf},
             "task": {"kind": 1}, "chain": [{}], "now": "2026-11-28"}
    for k in range(len(valid) + 1):
        for fields in itertools.combinations(valid, k):
            value = {"agent": {"id": "a", "attrs": {"r": "x"}}, "tool": "t",
                     **{f: valid[f] for f in fields}}
            fast = fast_request(value)
            assert fast is not None and same(fast, parse_request(value)), value
            if "target" in fields:
                nulled = {**value, "target": None}
                assert same(fast_request(nulled), parse_request(nulled))
            for f in ("agent", "tool", *fields):
                bad = {**value, f: wrong[f]}
                assert fast_request(bad) is None and _pydantic(bad) is None, bad

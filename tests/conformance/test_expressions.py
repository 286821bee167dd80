"""LANGUAGE.md §4: expressions, the data-class lattice, names, operators and standard functions.

Each case is one condition in `permit probe when EXPR`: the decision tells whether it was true
(allow), false (deny, no errors) or an evaluation error (deny, with an error).
"""

from __future__ import annotations

import pytest
from support import load_text

import agp
from agp.compile import evaluator
from agp.loader import check_sources
from agp.source import Source

PRELUDE = """
import std.intents
dataclass public
dataclass internal > public
dataclass confidential > internal
dataclass pii > internal
dataclass restricted > confidential, pii
agent support_bot "spiffe://acme.com/agents/support-bot"
agent billing "spiffe://acme.com/agents/billing/*"
tool crm.lookup { intent read  data pii }
tool http.* { intent egress }
tool http.get { intent read }
tool plain.tool { intent read }
task support_ticket { }
task other_task { }
"""

BOT = "spiffe://acme.com/agents/support-bot"
BILLING = "spiffe://acme.com/agents/billing/eu-1"
NOW = "2026-11-28T10:02:00Z"  # a Saturday
ERROR = "error"


def truth(expr: str, **request):
    engine = load_text(PRELUDE + f"\npermit probe when {expr}\n")
    request.setdefault("agent", {"id": BILLING})
    request.setdefault("tool", "plain.tool")
    request.setdefault("now", NOW)
    d = engine.decide(request)
    if d.decision == "allow":
        assert list(d.errors) == []
        return True
    assert d.decision == "deny"
    assert list(d.rules) == ["default.deny"], d.rules
    return ERROR if d.errors else False


def case(expr, expected, **request):
    return pytest.param(expr, request, expected, id=f"{expr} -> {expected}")


def run(expr, request, expected):
    assert truth(expr, **request) == expected


# --- Boolean operators, short-circuit, precedence ---

BOOLEAN = [
    case("true", True),
    case("false", False),
    case("true and true", True),
    case("true and false", False),
    case("false or true", True),
    case("false or false", False),
    case("not false", True),
    case("not true", False),
    case("not not true", True),
    case("(true)", True),
    case("false and args.missing > 1", False),
    case("true or args.missing > 1", True),
    case("true and args.missing > 1", ERROR),
    case("false or args.missing > 1", ERROR),
    case("args.missing > 1 or true", ERROR),
    case("args.missing > 1 and false", ERROR),
    case("true or false and false", True),
    case("(true or false) and false", False),
    case("not false and false", False),
    case("not 1 == 2", True),
    case("not (true and false)", True),
    case("args.x and true", ERROR, args={"x": 5}),
    case("args.x or true", ERROR, args={"x": "yes"}),
    case("not args.x", ERROR, args={"x": 0}),
    case("args.x", True, args={"x": True}),
    case("args has amount and args.amount > 3", False, args={}),
    case("args has amount and args.amount > 3", True, args={"amount": 4}),
]


@pytest.mark.parametrize("expr, request_, expected", BOOLEAN)
def test_boolean(expr, request_, expected):
    run(expr, request_, expected)


# --- Equality never fails; ordering and arithmetic across types do ---

EQUALITY = [
    case('args.n == "1"', False, args={"n": 1}),
    case('args.n != "1"', True, args={"n": 1}),
    case("args.b == 1", False, args={"b": True}),
    case("args.b != 1", True, args={"b": True}),
    case("args.l == [1, 2]", True, args={"l": [1, 2]}),
    case("args.l == [2, 1]", False, args={"l": [1, 2]}),
    case("args.o == args.p", True, args={"o": {"a": 1}, "p": {"a": 1}}),
    case("args.o == args.p", False, args={"o": {"a": 1}, "p": {"a": 2}}),
    case("args.o == args.l", False, args={"o": {"a": 1}, "l": [1]}),
    case("args.s == 5m", False, args={"s": "5m"}),
    case("1 == 1.0", True),
    case('"a" == "a"', True),
    case('"a" != "b"', True),
    case("true == true", True),
    case("tool == \"plain.tool\"", True),
    case("args.missing == 1", ERROR, args={}),
]


@pytest.mark.parametrize("expr, request_, expected", EQUALITY)
def test_equality(expr, request_, expected):
    run(expr, request_, expected)


ORDERING = [
    case("1 < 2", True),
    case("2 <= 2", True),
    case("3 > 2.5", True),
    case("2 >= 3", False),
    case('"abc" < "abd"', True),
    case('"b" > "abc"', True),
    case("2h > 90m", True),
    case("1h30m == 90m", True),
    case("args.n < args.s", ERROR, args={"n": 1, "s": "a"}),
    case("args.s >= args.n", ERROR, args={"n": 1, "s": "a"}),
    case("args.b < args.c", ERROR, args={"b": True, "c": False}),
    case("args.l < args.l", ERROR, args={"l": [1]}),
    case("args.n > 0", ERROR, args={"n": None}),
    case("args.amount <= 100", True, args={"amount": 100}),
    case("args.amount <= 100", False, args={"amount": 100.5}),
]


@pytest.mark.parametrize("expr, request_, expected", ORDERING)
def test_ordering(expr, request_, expected):
    run(expr, request_, expected)


ARITHMETIC = [
    case("1 + 2 == 3", True),
    case("args.n - 1 == 4", True, args={"n": 5}),
    case("-args.n == -5", True, args={"n": 5}),
    case("-1 + 2 == 1", True),
    case("10 - 3 - 2 == 5", True),
    case("0.5 + 0.5 == 1", True),
    case("5m + 30s == 330s", True),
    case("1h - 30m == 30m", True),
    case("-5m + 10m == 5m", True),
    case("1h30m == 5400s", True),
    case("1d == 24h", True),
    case("args.n + args.s == 1", ERROR, args={"n": 1, "s": "a"}),
    case("args.n + 1 > 0", ERROR, args={"n": "1"}),
    case("task.age + 5m > 10m", True,
         task={"kind": "support_ticket", "started_at": "2026-11-28T09:56:00Z"}),
    case("task.age == 6m", True,
         task={"kind": "support_ticket", "started_at": "2026-11-28T09:56:00Z"}),
    case("task.age < 5m", False,
         task={"kind": "support_ticket", "started_at": "2026-11-28T09:56:00Z"}),
]


@pytest.mark.parametrize("expr, request_, expected", ARITHMETIC)
def test_arithmetic(expr, request_, expected):
    run(expr, request_, expected)


# --- in, matches, has, is ---

ALICE = {"principal": "user:alice", "kind": "human"}
CHAIN_BOT = [ALICE, {"principal": BOT, "kind": "agent"}]
CHAIN_BILLING = CHAIN_BOT + [{"principal": BILLING, "kind": "agent"}]

MEMBERSHIP = [
    case("2 in [1, 2, 3]", True),
    case('"b" in ["a", "c"]', False),
    case("args.x in args.l", True, args={"x": {"k": 1}, "l": [{"k": 1}]}),
    case('"1" in [1, 2]', False),
    case('"ell" in "hello"', True),
    case('"x" in "hello"', False),
    case('"" in "hello"', True),
    case("pii in data", True, data=["pii"]),
    case("pii in data", True, tool="crm.lookup"),
    case("internal in data", False, data=["pii"]),
    case("public in data", False),
    case("read in intent", True),
    case("egress in intent", False),
    case("egress in intent", True, intent=["egress"]),
    case("egress in intent and read in intent", True, tool="http.get"),
    case('"read" in intent', True),
    case("billing in chain", True, agent={"id": BILLING}, chain=CHAIN_BILLING),
    case("support_bot in chain", True, agent={"id": BILLING}, chain=CHAIN_BILLING),
    case("billing in chain", False, agent={"id": BOT}, chain=CHAIN_BOT),
    case("support_bot in chain", True, agent={"id": BOT}, chain=CHAIN_BOT),
    case("args.x in args.y", ERROR, args={"x": 1, "y": 5}),
]


@pytest.mark.parametrize("expr, request_, expected", MEMBERSHIP)
def test_in(expr, request_, expected):
    run(expr, request_, expected)


MATCHES = [
    case('tool matches "plain.*"', True),
    case('args.s matches "crm.*"', True, args={"s": "crm.notes.read"}),
    case('args.s matches "a/*"', True, args={"s": "a/b/c"}),
    case('args.s matches "*"', True, args={"s": ""}),
    case('args.s matches "a*c"', True, args={"s": "a.b/c"}),
    case('args.s matches "a?c"', True, args={"s": "abc"}),
    case('args.s matches "a?c"', True, args={"s": "a/c"}),
    case('args.s matches "a?c"', False, args={"s": "abbc"}),
    case('args.s matches "a?c"', False, args={"s": "ac"}),
    case('args.s matches "abc"', False, args={"s": "xabc"}),
    case('args.s matches "abc"', False, args={"s": "abcx"}),
    case('args.s matches "ab*"', False, args={"s": "xab"}),
    case('args.s matches "*ab"', False, args={"s": "abx"}),
    case('args.s matches "a+b"', True, args={"s": "a+b"}),
    case('args.s matches "[ab]"', True, args={"s": "[ab]"}),
    case('args.s matches "[ab]"', False, args={"s": "a"}),
    case('args.s matches "a.c"', False, args={"s": "abc"}),
    case('args.s matches "*.example.com"', True, args={"s": "api.eu.example.com"}),
    case('args.s matches "*.example.com"', False, args={"s": "example.com"}),
    case('args.s matches "x"', ERROR, args={"s": 5}),
]


@pytest.mark.parametrize("expr, request_, expected", MATCHES)
def test_matches(expr, request_, expected):
    run(expr, request_, expected)


HAS_IS = [
    case("args has amount", True, args={"amount": 1}),
    case("args has amount", False, args={}),
    case("target has host", True, target={"host": "h"}),
    case("target has host", False, target={}),
    case("target has host", False),
    case("context has k", True, context={"k": False}),
    case("task has params", True, task={"kind": "support_ticket", "params": {}}),
    case("agent is billing", True),
    case("agent is support_bot", False),
    case("agent is support_bot", True, agent={"id": BOT}),
    case("task is support_ticket", True, task={"kind": "support_ticket"}),
    case("task is other_task", False, task={"kind": "support_ticket"}),
    case("task is support_ticket", False),
    case("chain.origin has principal", False),
]


@pytest.mark.parametrize("expr, request_, expected", HAS_IS)
def test_has_is(expr, request_, expected):
    run(expr, request_, expected)


QUANTIFIERS = [
    case("any(x in args.l: x > 2)", True, args={"l": [1, 3]}),
    case("all(x in args.l: x > 2)", False, args={"l": [1, 3]}),
    case("all(x in args.l: x > 0)", True, args={"l": [1, 3]}),
    case("any(x in args.l: x > 5)", False, args={"l": [1, 3]}),
    case("all(x in args.l: false)", True, args={"l": []}),
    case("any(x in args.l: true)", False, args={"l": []}),
    case("any(x in [1, 2]: x == 2)", True),
    case('any(h in chain.hops: h.kind == "human")', True, agent={"id": BOT}, chain=CHAIN_BOT),
    case('all(h in chain.hops: h.kind == "agent")', False, agent={"id": BOT}, chain=CHAIN_BOT),
    case('any(x in args.l: x matches "crm.*")', True, args={"l": ["http.get", "crm.x"]}),
    case("any(x in args.l: all(y in x: y > 0))", True, args={"l": [[1, 2], [0]]}),
    case("all(x in args.l: x > 2)", ERROR, args={"l": [3, "a"]}),
    case("any(x in args.l: x > 2)", ERROR, args={"l": 5}),
]


@pytest.mark.parametrize("expr, request_, expected", QUANTIFIERS)
def test_quantifiers(expr, request_, expected):
    run(expr, request_, expected)


# count, sum, and the filter `if COND` of all four, each sentence of §4 on quantifiers; run by
# the compiled evaluator (which may raise only where the reference reports an error) and by the
# reference, which must agree.
L = "args.l"
COUNT_SUM_FILTER = [
    # count: the number of items for which EXPR is true
    case(f"count(x in {L}: x > 1) == 2", True, args={"l": [1, 2, 3]}),
    case(f"count(x in {L}: x > 5) == 0", True, args={"l": [1, 2, 3]}),
    case(f"count(x in {L}: true) == 0", True, args={"l": []}),
    # sum: of numbers, or of durations; bounded like `+`
    case(f"sum(x in {L}: x) == 6.5", True, args={"l": [1, 2.5, 3]}),
    case(f"sum(x in {L}: 1m) == 3m", True, args={"l": [1, 2, 3]}),
    case(f"sum(x in {L}: x) > 0", ERROR, args={"l": [1e308, 1e308]}),
    case(f"sum(x in {L}: 36500d) > 0s", ERROR, args={"l": [1, 2]}),
    case(f"sum(x in {L}: x) > 0", ERROR, args={"l": ["a"]}),
    case(f"sum(x in {L}: x) > 0", ERROR, args={"l": [True]}),
    case(f"sum(x in {L}: x) > 0", ERROR, args={"l": [1, "a"]}),
    # the sum of no items: zero of the type the checker infers for EXPR
    case(f"sum(x in {L}: x) == 0", True, args={"l": []}),
    case(f"sum(x in {L}: x) == 0s", False, args={"l": []}),
    case(f"sum(x in {L}: 1m) == 0s", True, args={"l": []}),
    case(f"sum(x in {L}: task.age) == 0s", True, args={"l": []}),
    case(f"sum(x in {L} if x > 5: 1m) + 1m == 1m", True, args={"l": [1, 2]}),
    # the filter: only items for which COND is true; EXPR not evaluated for the others
    case(f'any(x in {L} if x != "a": x > 1)', True, args={"l": ["a", 2]}),
    case(f'any(x in {L} if x != "a": x > 5)', False, args={"l": ["a", 2]}),
    case(f'all(x in {L} if x != "a": x > 1)', True, args={"l": ["a", 2]}),
    case(f'all(x in {L} if x != "a": x > 5)', False, args={"l": ["a", 2]}),
    case(f"all(x in {L} if x > 5: false)", True, args={"l": [1, 2]}),
    case(f'count(x in {L} if x != "a": x > 1) == 1', True, args={"l": ["a", 2, 1]}),
    case(f'sum(x in {L} if x != "a": x) == 3', True, args={"l": ["a", 1, 2]}),
    # list order: `any` stops at the first true, `all` at the first false
    case(f"any(x in {L}: x > 1)", True, args={"l": [2, "a"]}),
    case(f"all(x in {L}: x > 1)", False, args={"l": [0, "a"]}),
    case(f"any(x in {L} if x > 1: true)", True, args={"l": [2, "a"]}),
    case(f"any(x in {L}: x > 1)", ERROR, args={"l": ["a", 2]}),
    # ... while count and sum evaluate every item considered
    case(f"count(x in {L}: x > 1) > 0", ERROR, args={"l": [2, "a"]}),
    case(f"count(x in {L} if x > 1: true) > 0", ERROR, args={"l": [2, "a"]}),
    case(f"sum(x in {L}: x + 1) > 0", ERROR, args={"l": [2, "a"]}),
    # an error in COND or EXPR is the whole quantifier's (`not` does not turn it into true)
    case(f"not any(x in {L} if x > 1: true)", ERROR, args={"l": ["a"]}),
    case(f"not all(x in {L} if true: x > 1)", ERROR, args={"l": ["a"]}),
    # so is a COND, or an EXPR of any/all/count, that is not a boolean
    case(f"any(x in {L} if x: true)", ERROR, args={"l": [1]}),
    case(f"not all(x in {L} if x: true)", ERROR, args={"l": [1]}),
    case(f"count(x in {L}: x) == 1", ERROR, args={"l": [1]}),
    case(f"not all(x in {L}: x)", ERROR, args={"l": [1]}),
    # nested, with the outer variable in the inner filter
    case(f"count(x in {L} if any(y in {L} if y > x: true): true) == 2", True,
         args={"l": [1, 2, 3]}),
    # reserved words after `.` are names
    case("args.count + args.sum == 3", True, args={"count": 1, "sum": 2}),
]


def reference_truth(expr: str, **request):
    policy, diagnostics = check_sources([Source("probe.agp",
                                                PRELUDE + f"\npermit probe when {expr}\n")])
    assert policy is not None, diagnostics
    request.setdefault("agent", {"id": BILLING})
    request.setdefault("tool", "plain.tool")
    request.setdefault("now", NOW)
    d = agp.Engine(policy, compiled=False).decide(request)
    return ERROR if d.errors else d.decision == "allow"


@pytest.mark.parametrize("expr, request_, expected", COUNT_SUM_FILTER)
def test_count_sum_and_filters(expr, request_, expected, monkeypatch):
    monkeypatch.setattr(evaluator, "CHECK_FALLBACK", True)
    run(expr, request_, expected)
    assert reference_truth(expr, **request_) == expected


# --- Standard functions ---

FUNCTIONS = [
    case('lower("AbC") == "abc"', True),
    case('upper("AbC") == "ABC"', True),
    case('lower(args.s) == "x"', ERROR, args={"s": 5}),
    case('len("abc") == 3', True),
    case("len(args.l) == 2", True, args={"l": [1, 2]}),
    case("len(args) == 2", True, args={"a": 1, "b": 2}),
    case("len(args.n) == 1", ERROR, args={"n": 5}),
    case('startswith("hello", "he")', True),
    case('startswith("hello", "lo")', False),
    case('endswith("hello", "lo")', True),
    case('endswith("hello", "he")', False),
    case('contains("hello", "ell")', True),
    case('contains("hello", "z")', False),
    case("contains(args.l, 2)", True, args={"l": [1, 2]}),
    case("contains(args.l, 3)", False, args={"l": [1, 2]}),
    case("hour(now) == 10", True),
    case("hour(now) == 10", True, now="2026-11-28T12:02:00+02:00"),
    case("hour(now) == 23", True, now="2026-11-29T00:30:00+01:00"),
    case("weekday(now) == 5", True),
    case("weekday(now) == 0", True, now="2026-11-23T09:00:00Z"),
    case("weekday(now) == 6", True, now="2026-11-29T23:59:59Z"),
    case("weekday(now) == 6", True, now="2026-11-23T00:30:00+01:00"),  # Sunday 23:30 UTC
]


@pytest.mark.parametrize("expr, request_, expected", FUNCTIONS)
def test_functions(expr, request_, expected):
    run(expr, request_, expected)


# --- The names of a condition ---

FULL_TASK = {"id": "t-81", "kind": "support_ticket", "params": {"customer": "c-42"},
             "objective": "Refund order 1234"}

NAMES = [
    case('tool == "http.get"', True, tool="http.get"),
    case('agent.id == "spiffe://acme.com/agents/billing/eu-1"', True),
    case('agent.attrs.model == "x-large"', True, agent={"id": BILLING, "attrs": {"model": "x-large"}}),
    case("agent.attrs.model == 1", ERROR, agent={"id": BILLING}),
    case('task.kind == "support_ticket"', True, task=FULL_TASK),
    case('task.id == "t-81"', True, task=FULL_TASK),
    case('task.params.customer == "c-42"', True, task=FULL_TASK),
    case('task.objective == "Refund order 1234"', True, task=FULL_TASK),
    case('task.kind == "x"', ERROR),
    case("chain.depth == 0", True),
    case("chain.depth == 1", True, agent={"id": BOT}, chain=CHAIN_BOT),
    case("chain.depth == 2", True, chain=CHAIN_BILLING),
    case("len(chain.hops) == 3", True, chain=CHAIN_BILLING),
    case('chain.origin.principal == "user:alice"', True, chain=CHAIN_BILLING),
    case('chain.origin.principal == "user:alice"', ERROR),
    case('context.region == "eu"', True, context={"region": "eu"}),
    case('context.region == "eu"', ERROR),
    case('target.host == "a.example"', True, target={"host": "a.example", "external": True}),
    case("target.external", True, target={"host": "a.example", "external": True}),
    case('target.host == "a.example"', ERROR),
    case("args.data == 1", True, args={"data": 1}),
    case("args.when == 1 and args.in == 2", True, args={"when": 1, "in": 2}),
    case("args.tool.task == 3", True, args={"tool": {"task": 3}}),
    case("args.a.b.c == 1", True, args={"a": {"b": {"c": 1}}}),
    case("args.a.b.c == 1", ERROR, args={"a": {"b": 1}}),
]


@pytest.mark.parametrize("expr, request_, expected", NAMES)
def test_names(expr, request_, expected):
    run(expr, request_, expected)


# --- The data-class lattice ---

LATTICE = [
    case("data <= public", True),                                   # no class: all hold
    case("data >= public", False),                                  # no class: none is there
    case("data <= pii", True, data=["public", "pii"]),
    case("data <= confidential", False, data=["public", "pii"]),
    case("data <= restricted", True, data=["public", "pii"]),
    case("data >= pii", True, data=["public", "pii"]),
    case("data >= internal", True, data=["public", "pii"]),
    case("data >= confidential", False, data=["public", "pii"]),
    case("data >= restricted", False, data=["public", "pii"]),
    case("data <= pii", False, data=["confidential"]),
    case("data >= pii", False, data=["confidential"]),
    case("data <= public", False, data=["internal"]),
    case("data >= public", True, data=["internal"]),
    case("data >= restricted", True, data=["restricted"]),
    case("data <= internal", True, data=["internal", "public"]),
    case("data < pii", True, data=["internal"]),
    case("data < pii", False, data=["pii"]),
    case("data > pii", True, data=["restricted"]),
    case("data > pii", False, data=["pii"]),
    case("data <= public", False, tool="crm.lookup"),                # the tool's pii joins
    case("data <= pii", True, tool="crm.lookup", data=["public"]),
    case("data >= pii", True, tool="crm.lookup", data=["public"]),
    case("public in data", True, tool="crm.lookup", data=["public"]),
    case("pii <= restricted", True),
    case("public <= restricted", True),
    case("restricted <= pii", False),
    case("confidential <= pii", False),
    case("pii <= confidential", False),
    case("pii >= pii", True),
    case("pii <= pii", True),
    case("pii < restricted", True),
    case("pii < pii", False),
    case("restricted > public", True),
    case("pii == pii", True),
    case("pii != confidential", True),
    case("restricted >= data", True, data=["pii"]),               # X >= data means data <= X
    case("confidential >= data", False, data=["pii"]),
    case("public <= data", True, data=["pii"]),                   # X <= data means data >= X
    case("pii <= data", False, data=["confidential"]),
    case("len(data) == 2", True, data=["pii", "public"]),
    case("len(data) == 1", True, tool="crm.lookup", data=["pii"]),
    case("data >= public and data <= public", True, data=["public"]),
]


@pytest.mark.parametrize("expr, request_, expected", LATTICE)
def test_lattice(expr, request_, expected):
    run(expr, request_, expected)

"""Differential testing: the compiled evaluator agrees exactly with the reference (agp.interp).

A hypothesis strategy writes whole policy sets as `.agp` text (declarations, tasks with envelopes,
rules with random conditions over the whole expression language, including conditions that fail
at run time) and matching random requests; every decision must be equal field by field (decision,
ttl, rules, reasons, errors, policy). Every example policy set and trace, and the spec's example,
go through both as well.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support import ROOT, SPEC

import agp
from agp import budget, envelope, interp
from agp.compile import compile_ir, evaluator
from agp.compile.bundle import dumps, loads
from agp.compile.ir import policy_to_ir
from agp.engine import make_evaluator
from agp.identity import Identity
from agp.loader import check_sources
from agp.source import Source

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.fixture(autouse=True)
def strict_fallback(monkeypatch):
    # Compiled code may raise only where the reference reports an error.
    monkeypatch.setattr(evaluator, "CHECK_FALLBACK", True)


# ---- expressions, by type ----------------------------------------------------------------------

CLASSES = ["c0", "c1", "c2", "c3"]
INTENTS = ["i0", "i1", "i2"]


def boolean(depth: int) -> st.SearchStrategy:
    leaves = st.one_of(
        st.sampled_from(["true", "false", "args has n", "args has s", "target has host",
                         "task has params", "task is k0", "agent is a0", "agent is a1",
                         "a1 in chain", "chain.origin is a0", "chain has origin", "i0 in intent",
                         '"i1" in intent', "c1 in data", "target.external", "context.flag",
                         "args.s matches \"a*\"", 'args.s in ["a", "ab", "b"]',
                         "args.n in [1, 2.5, -3]", "c0 <= c2", "task.age > 10m",
                         "args.d < 1h", "is_ip(target.host)",
                         # issue 16: the list functions, host canonicalisation, a pattern from
                         # the request, and (inside a quantifier's body, where `args.n` becomes
                         # the item) a nested quantifier
                         'subset(args.l, [1, 2.5, "a"])', "intersects(args.l, [3, [1]])",
                         "args.l == [1, 2.5]", "args.n in args.l",
                         'canonical_host(target.host) == "169.254.169.254"',
                         'host_within(target.host, "EXAMPLE.")', "is_private_ip(target.host)",
                         'ip_in_cidr(target.host, "10.0.0.0/8")', "args.s matches task.params.p",
                         "any(y in args.l: y == args.n)", "all(y in args.l: args.s in args.l)",
                         # issue 12: the session (LANGUAGE.md §6) and the verified identity
                         "task.seen >= c2", "c1 in task.seen", "task.seen <= c1",
                         "len(task.seen) > 1", "task has seen", "agent.verified",
                         "any(h in task.history: i0 in h.intent)",
                         "any(h in task.history if h.tool matches \"t1*\": h.data >= c1)",
                         'count(h in task.history if h.decision == "allow": h.age < 1h) >= 2',
                         "sum(h in task.history: h.args.m) > 2",
                         "sum(h in task.history if h.args has m: h.age) < 2h",
                         "all(h in task.history: h.args has m and h.at < now)",
                         # quantifiers over sets take the names in order, as labels
                         "count(c in data: c >= c1) >= 2", "any(i in intent: i == i1)",
                         "all(c in task.seen: c <= c2 and c in data)",
                         "any(h in task.history: any(c in h.data if c != c0: c in task.seen))",
                         "len(task.history) == 2"]),
        st.builds(lambda op, c, flip: f"{c} {op} data" if flip else f"data {op} {c}",
                  st.sampled_from(["<=", "<", ">=", ">"]), st.sampled_from(CLASSES),
                  st.booleans()),
        st.builds(lambda a, op, b: f"{a} {op} {b}", number(depth),
                  st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), number(depth)),
        st.builds(lambda a, op, b: f"{a} {op} {b}", string(depth), st.sampled_from(
            ["==", "!=", "<"]), string(depth)),
        st.builds(lambda s: f"startswith({s}, \"a\")", string(depth)),
    )
    if depth <= 0:
        return leaves
    sub = boolean(depth - 1)
    return st.one_of(
        leaves,
        st.builds(lambda a, op, b: f"({a} {op} {b})", sub, st.sampled_from(["and", "or"]), sub),
        st.builds(lambda a: f"not ({a})", sub),
        st.builds(lambda q, f, b: f"{q}(x in args.l{f}: {b.replace('args.n', 'x')})",
                  st.sampled_from(["any", "all"]), filters(depth - 1), sub),
        st.builds(lambda f, b, op, n: f"count(x in args.l{f}: {b.replace('args.n', 'x')}) "
                                      f"{op} {n}",
                  filters(depth - 1), sub, st.sampled_from(["==", ">", "<="]),
                  st.sampled_from(["0", "1", "2", "args.n"])),
        st.builds(lambda f, b, op, n: f"sum(x in args.l{f}: {b}) {op} {n}",
                  filters(depth - 1), st.sampled_from(["x", "x + 1", "args.n", "1", "len(x)"]),
                  st.sampled_from(["==", ">", "<="]), st.sampled_from(["0", "2.5", "args.n"])),
        st.builds(lambda f, b, op, d: f"sum(x in args.l{f}: {b}) {op} {d}",
                  filters(depth - 1), st.sampled_from(["1m", "args.d", "task.age", "x"]),
                  st.sampled_from(["==", ">", "<="]), st.sampled_from(["0s", "2m", "args.d"])),
    )


def filters(depth: int) -> st.SearchStrategy:
    """The optional `if COND` of a quantifier over `args.l` (`args.n` in it becomes the item)."""
    return st.one_of(st.just(""), boolean(max(depth, 0)).map(
        lambda c: f" if {c.replace('args.n', 'x')}"))


def number(depth: int) -> st.SearchStrategy:
    leaves = st.sampled_from(["0", "1", "2.5", "-3", "args.n", "chain.depth", "len(args.s)",
                              "len(data)", "hour(now)", "args.s", "context.flag"])
    if depth <= 0:
        return leaves
    return st.one_of(leaves, st.builds(lambda a, op, b: f"({a} {op} {b})", leaves,
                                       st.sampled_from(["+", "-"]), leaves),
                     st.builds(lambda a: f"-{a}", leaves))


def string(depth: int) -> st.SearchStrategy:
    return st.sampled_from(['"a"', '"ab"', "args.s", "tool", "agent.id", "lower(args.s)",
                            "target.host", "task.kind", "task.params.p", "agent.attrs.role"])


# ---- policy sets --------------------------------------------------------------------------------

HEADER = """
dataclass c0
dataclass c1 > c0
dataclass c2 > c1
dataclass c3 > c0
intent i0, i1, i2
agent a0 "spiffe://x/a0"
agent a1 "spiffe://x/b/*"
tool t0 { intent i0  data c0  args { n: number, s: string, d?: duration, l?: list } }
tool t1.* { intent i1 }
tool "t2" { intent i2  data c1 }
"""


@st.composite
def task_decl(draw, name: str) -> str:
    parts = []
    if draw(st.booleans()):
        parts.append("params { p: string }")
    if draw(st.booleans()):
        parts.append("tools " + ", ".join(draw(st.lists(st.sampled_from(["t0", "t1.*", "t1.x",
                                                                           "t2"]),
                                                        min_size=1, max_size=3, unique=True))))
    if draw(st.booleans()):
        parts.append("intents " + ", ".join(draw(st.lists(st.sampled_from(INTENTS), min_size=1,
                                                          max_size=3, unique=True))))
    if draw(st.booleans()):
        parts.append("data <= " + draw(st.sampled_from(CLASSES)))
    if draw(st.booleans()):
        parts.append("ttl " + draw(st.sampled_from(["30m", "1h", "10s"])))
    if draw(st.booleans()):
        to = draw(st.sampled_from(["", "to a1 ", "to a0, a1 "]))
        depth = draw(st.sampled_from(["", "depth <= 2", "depth <= 1", "depth <= 0"]))
        parts.append(f"delegate {{ {to}{depth} }}")
    return f"task {name} {{ {' '.join(parts)} }}"


@st.composite
def rule(draw, i: int) -> str:
    effect = draw(st.sampled_from(["permit", "permit", "forbid", "ask"]))
    words = [effect, f"r{i}"]
    if draw(st.booleans()):
        on = draw(st.lists(st.sampled_from(["t0", "t1.*", "t1.x", "t2", "intent i0",
                                            "intent i2", "\"t*\""]),
                           min_size=1, max_size=2, unique=True))
        words.append("on " + ", ".join(on))
    if draw(st.integers(0, 2)) == 0:
        words.append("in " + ", ".join(draw(st.lists(st.sampled_from(["k0", "k1"]), min_size=1,
                                                     max_size=2, unique=True))))
    if draw(st.integers(0, 2)) == 0:
        words.append("by " + ", ".join(draw(st.lists(st.sampled_from(["a0", "a1"]),
                                                     min_size=1, max_size=2, unique=True))))
    if draw(st.integers(0, 3)) > 0:
        words.append("when " + draw(boolean(2)))
    if draw(st.integers(0, 3)) == 0:
        words.append("unless " + draw(boolean(1)))
    if draw(st.booleans()):
        words.append("ttl " + draw(st.sampled_from(["5m", "1h", "30s"])))
    if draw(st.booleans()):
        words.append(f'because "reason {i}"')
    return " ".join(words)


@st.composite
def policy_sets(draw) -> str:
    parts = [HEADER, draw(task_decl("k0")), draw(task_decl("k1"))]
    if draw(st.booleans()):
        parts.append("defaults { ttl " + draw(st.sampled_from(["10m", "2h"])) + " max_ttl "
                     + draw(st.sampled_from(["1h", "20m"])) + " }")
    parts.extend(draw(rule(i)) for i in range(draw(st.integers(1, 8))))
    return "\n".join(parts) + "\n"


# ---- requests ------------------------------------------------------------------------------------

T0 = "2026-11-28T10:00:00Z"


def fake_identity(agent_id: str | None, svid: str | None, now) -> Identity:
    """An identity check for both evaluators: `good:ID` proves ID, `bad` proves nothing, and an
    id starting with `strict:` must bring a token."""
    asserted = agent_id if agent_id is not None else ""
    if svid is None:
        code = "identity.missing" if asserted.startswith("strict:") else None
        return Identity(asserted, False, code, code and f"{code}: no agent.svid")
    if not svid.startswith("good:"):
        return Identity(asserted, False, "identity.invalid", "identity.invalid: bad signature")
    subject = svid.removeprefix("good:")
    if agent_id is not None and agent_id != subject:
        return Identity(asserted, False, "identity.mismatch", "identity.mismatch: not the subject")
    return Identity(subject, True)


AGENTS = [{"id": "spiffe://x/a0"}, {"id": "spiffe://x/b/eu"}, {"id": "other"},
          {"svid": "good:spiffe://x/a0"}, {"svid": "good:spiffe://x/b/eu"},
          {"id": "spiffe://x/a0", "svid": "bad"}, {"id": "other", "svid": "good:spiffe://x/a0"},
          {"id": "strict:x"}]


@st.composite
def history_items(draw) -> dict:
    """Items of `task.history`: tools, labels declared or not, times before, at and after `now`
    (T0 is the earliest `now`), and args with and without the `m` the rules sum."""
    item = {"tool": draw(st.sampled_from(["t0", "t1.x", "t2"])),
            "decision": draw(st.sampled_from(["allow", "allow", "deny", "ask"])),
            "at": draw(st.sampled_from(["2026-11-28T09:30:00Z", "2026-11-28T09:59:00Z", T0,
                                        "2026-11-28T08:00:00Z", "2026-11-28T10:50:00Z"]))}
    if draw(st.booleans()):
        item["intent"] = draw(st.lists(st.sampled_from(INTENTS + ["qq"]), max_size=2,
                                       unique=True))
    if draw(st.booleans()):
        item["data"] = draw(st.lists(st.sampled_from(CLASSES + ["zz"]), max_size=2, unique=True))
    if draw(st.booleans()):
        item["args"] = {"m": draw(st.sampled_from([1, 2.5, "x"]))}
    return item


@st.composite
def request_values(draw) -> dict:
    maybe = draw
    req = {"agent": {**draw(st.sampled_from(AGENTS)),
                     "attrs": draw(st.sampled_from([{}, {"role": "admin"}, {"role": 3}]))},
           "tool": draw(st.sampled_from(["t0", "t1.x", "t1.y.z", "t2", "t3"])),
           "now": draw(st.sampled_from([T0, "2026-11-28T10:45:00Z", "2026-11-29T03:00:00Z"]))}
    args = {}
    for key, values in (("n", [1, 2.5, -3, "1", True, 100]), ("s", ["a", "ab", "b", 7, ""]),
                        ("d", ["5m", 30, "2h", "bad", -1]), ("l", [[1, 2.5], [], "x", [3], [1, "a", [1], 2.5, True], list(range(15)),
                               [[1.0], [1], "ab" * 20]])):
        if maybe(st.booleans()):
            args[key] = draw(st.sampled_from(values))
    req["args"] = args
    if maybe(st.booleans()):
        req["data"] = draw(st.lists(st.sampled_from(CLASSES + ["zz"]), max_size=2, unique=True))
    if maybe(st.booleans()):
        req["intent"] = draw(st.lists(st.sampled_from(INTENTS + ["qq"]), max_size=2, unique=True))
    if maybe(st.booleans()):
        req["target"] = draw(st.sampled_from([{}, {"host": "10.0.0.1", "external": False},
                                              {"host": "a.example", "external": True},
                                              {"host": "[::ffff:a9fe:a9fe]:80"},
                                              {"host": "2852039166"}, {"host": "A.EXAMPLE."},
                                              {"external": 1}]))
    if maybe(st.booleans()):
        req["context"] = {"flag": draw(st.sampled_from([True, False, 1]))}
    if maybe(st.integers(0, 3)) > 0:
        task = {"kind": draw(st.sampled_from(["k0", "k1", "kx"])), "id": "t-1"}
        if maybe(st.booleans()):
            task["params"] = {"p": draw(st.sampled_from(["a", "ab", 2, "a*", "?b*", "*a?b*"]))}
        if maybe(st.integers(0, 3)) > 0:
            task["started_at"] = draw(st.sampled_from(STARTS))
        if maybe(st.booleans()):
            task["seen"] = draw(st.lists(st.sampled_from(CLASSES + ["zz"]), max_size=3,
                                         unique=True))
        if maybe(st.booleans()):
            task["history"] = draw(st.lists(history_items(), max_size=4))
        req["task"] = task
    # The envelope's checks of the chain apply with or without a task.
    if maybe(st.integers(0, 2)) > 0:
        agent = req["agent"]
        req["chain"] = draw(chains(agent.get("id") or agent["svid"].removeprefix("good:")))
    return req


# Task starts and hop times: exactly a task ttl (30m, 1h, 10s) or a hop scope ttl (5m) before a
# `now` of request_values, and later than T0 (request.invalid then).
STARTS = [T0, "2026-11-28T09:00:00Z", "2026-11-28T09:30:00Z", "2026-11-28T09:59:50Z",
          "2026-11-28T10:15:00Z", "2026-11-28T09:45:00Z", "2026-11-28T10:00:01Z"]
HOP_TIMES = ["2026-11-28T09:58:00Z", "2026-11-28T09:55:00Z", "2026-11-28T10:00:30Z"]
# Hop scopes: tool globs from the request, labels declared or not, ttls with and without `at`.
SCOPES = [{"tools": ["t0", "t1.*"], "ttl": "5m"}, {"intents": ["i0"]}, {"data": "c1"},
          {"ttl": 600}, {"tools": ["t?", "x*"]}, {"tools": []}, {"intents": ["i0", "i1", "qq"]},
          {"data": "zz"}, {"data": "c3", "ttl": "2m", "intents": ["i2"]}, {}]
PRINCIPALS = ["user:alice", "spiffe://x/a0", "spiffe://x/b/eu", "spiffe://x/b/us", "other"]


@st.composite
def chains(draw, agent: str) -> list:
    """Delegation chains: humans, agents and services in any order, repeated principals, hops
    with times and scopes; most end with the acting agent, as a real chain does."""
    chain = []
    for _ in range(draw(st.integers(0, 4))):
        hop = {"principal": draw(st.sampled_from(PRINCIPALS)),
               "kind": draw(st.sampled_from(["human", "agent", "agent", "service"]))}
        if draw(st.integers(0, 2)) == 0:
            hop["at"] = draw(st.sampled_from(HOP_TIMES))
        if draw(st.integers(0, 2)) == 0:
            hop["scope"] = draw(st.sampled_from(SCOPES))
        chain.append(hop)
    if draw(st.integers(0, 3)) > 0:
        chain.append({"principal": agent, "kind": "agent"})
    return chain


def check_text(text: str):
    policy, diagnostics = check_sources([Source("gen.agp", text)])
    return policy, diagnostics


def both(policy):
    return (agp.Engine(policy, evaluator=make_evaluator(policy, False, identity=fake_identity)),
            agp.Engine(policy, evaluator=make_evaluator(policy, True, identity=fake_identity)))


@SETTINGS
@given(policy_sets(), st.lists(request_values(), min_size=1, max_size=6), st.booleans(),
       st.booleans())
def test_compiled_agrees_with_reference_on_generated_policies(text, requests, ended, store):
    assert_agree(text, requests, ended, store)


@settings(SETTINGS, max_examples=40)  # a bundle runs the compiled code: the test above covers it
@given(policy_sets(), st.lists(request_values(), min_size=1, max_size=4))
def test_a_bundle_agrees_with_reference_on_generated_policies(text, requests):
    """Loaded from a bundle, the compiled evaluator has no checked Policy: it decides from the IR
    read back from JSON, and the reference evaluator explains errors with rules rebuilt from it."""
    policy, diagnostics = check_text(text)
    assume(policy is not None)
    bundled = agp.Engine(None, evaluator=compile_ir(loads(dumps(policy_to_ir(policy)))))
    reference = agp.Engine(policy, compiled=False)
    for req in requests:
        assert bundled.decide(req) == reference.decide(req), f"\n{text}\nrequest: {json.dumps(req)}"


@st.composite
def envelope_policies(draw) -> str:
    """Tasks, and one permit for every call: whether a call is allowed is the envelope's say."""
    return "\n".join([HEADER, draw(task_decl("k0")), draw(task_decl("k1")), "permit p"]) + "\n"


@settings(SETTINGS, max_examples=400)
@given(envelope_policies(), st.lists(request_values(), min_size=1, max_size=8), st.booleans())
def test_compiled_envelope_agrees_with_the_reference(text, requests, ended):
    assert_agree(text, requests, ended)


def assert_agree(text: str, requests: list, ended: bool, store: bool = False) -> None:
    policy, diagnostics = check_text(text)
    assume(policy is not None)
    reference, compiled = both(policy)
    for req in requests:
        want = reference.decide(req, task_ended=ended, store_unavailable=store)
        got = compiled.decide(req, task_ended=ended, store_unavailable=store)
        assert got == want, f"\n{text}\nrequest: {json.dumps(req)}"
        # A validated Request takes the other entry of the compiled evaluator.
        if "request.invalid" not in want.rules or any(
                "task.history[" in e for e in want.errors):
            validated = agp.Request.model_validate(req)
            assert compiled.decide(validated, task_ended=ended,
                                   store_unavailable=store) == want
            assert reference.decide(validated, task_ended=ended,
                                    store_unavailable=store) == want


@contextlib.contextmanager
def small_budget(steps: int | None, chunk: int | None):
    """Run out of the evaluation budget with small requests: each step of agp.budget's cost model
    is then exercised, and both evaluators must spend exactly the same."""
    saved = budget.MAX_EVAL_STEPS, budget.STRING_CHUNK
    budget.MAX_EVAL_STEPS = steps or saved[0]
    budget.STRING_CHUNK = chunk or saved[1]
    try:
        yield
    finally:
        budget.MAX_EVAL_STEPS, budget.STRING_CHUNK = saved


@st.composite
def quantified_policies(draw) -> str:
    """Rules on t0 whose conditions are quantifiers over `args.l`, nested ones included."""
    parts = [HEADER, "task k0 { params { p: string } }", "task k1 { }"]
    for i in range(draw(st.integers(1, 4))):
        body = draw(boolean(2)).replace("args.n", "x")
        effect = draw(st.sampled_from(["permit", "forbid", "ask"]))
        q = draw(st.sampled_from(["any", "all"]))
        parts.append(f"{effect} r{i} on t0 when {q}(x in args.l: {body})")
    return "\n".join(parts) + "\n"


@settings(SETTINGS, max_examples=100)
@given(quantified_policies(),
       st.lists(request_values().map(lambda r: {**r, "tool": "t0",
                                                "args": {"l": list(range(12)), **r["args"]}}),
                min_size=1, max_size=4),
       st.sampled_from([(30, 2), (150, 3), (600, 1), (None, 4)]))
def test_compiled_agrees_with_reference_on_a_small_budget(text, requests, limits):
    with small_budget(*limits):
        policy, diagnostics = check_text(text)
        assume(policy is not None)
        reference, compiled = both(policy)
        for req in requests:
            want = reference.decide(req)
            assert compiled.decide(req) == want, f"\n{text}\nrequest: {json.dumps(req)}"


def test_generated_policies_mostly_check():
    """The strategy is useful only if most generated sets pass the checker."""
    from hypothesis import find

    found = find(policy_sets(), lambda t: check_text(t)[0] is not None and "when" in t)
    assert check_text(found)[0] is not None


# ---- every example and the spec ------------------------------------------------------------------

EXAMPLES = sorted({p.parent for p in (ROOT / "examples").rglob("*.agp")})


def _example_sets():
    out = []
    for d in EXAMPLES:
        # a policy set is a directory whose parent holds no .agp file of its own
        if not any(q.suffix == ".agp" for q in d.parent.glob("*.agp")):
            out.append(d)
    return out


@pytest.mark.parametrize("path", _example_sets(), ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_agree(path):
    try:
        reference = agp.load(path, compiled=False)
    except agp.PolicyError:
        pytest.skip("example does not check (not this module's concern)")
    compiled = agp.load(path)
    assert compiled.compiled and not reference.compiled
    compiled.evaluator.warm()
    traces = sorted(path.rglob("*.jsonl"))
    compared = 0
    for trace in traces:
        ref = list(agp.replay_trace(reference, trace))
        com = list(agp.replay_trace(compiled, trace))
        assert len(ref) == len(com)
        for a, b in zip(ref, com, strict=True):
            assert (a.decision, a.passed, a.problem) == (b.decision, b.passed, b.problem), \
                f"{trace}:{a.line}"
            compared += a.decision is not None
    # Tool names of the set, with and without a task: decisions must match too.
    tools = [t.glob.pattern.replace("*", "x") for t in reference.policy.tools]
    tasks = list(reference.policy.tasks) + ["nope"]
    agents = [g.pattern.replace("*", "x") for g in reference.policy.agents.values()] or ["a"]
    for tool in tools + ["undeclared.tool"]:
        for kind in tasks:
            for agent in agents[:3]:
                req = {"agent": {"id": agent}, "tool": tool, "now": T0,
                       "task": {"kind": kind, "started_at": T0},
                       "chain": [{"principal": "user:alice", "kind": "human"},
                                 {"principal": agent, "kind": "agent"}]}
                assert compiled.decide(req) == reference.decide(req)
                del req["task"], req["chain"]
                assert compiled.decide(req) == reference.decide(req)
                compared += 2
    assert compared > 0


def test_spec_example_agrees():
    reference = agp.load(SPEC, compiled=False)
    compiled = agp.load(SPEC)
    request = json.loads((SPEC / "request.json").read_text())
    assert compiled.decide(request) == reference.decide(request)
    assert compiled.decide(request).ttl == 240
    for trace in SPEC.glob("*.jsonl"):
        ref = [o.decision for o in agp.replay_trace(reference, trace)]
        com = [o.decision for o in agp.replay_trace(compiled, trace)]
        assert ref == com and any(d is not None for d in ref)


def test_reference_is_interp():
    policy, _ = check_text(HEADER + "permit p on t0\n")
    ref = agp.Engine(policy, compiled=False)
    assert ref.decide({"agent": {"id": "a"}, "tool": "t0"}) == interp.decide(
        policy, {"agent": {"id": "a"}, "tool": "t0"})


# ---- the envelope: two implementations ----------------------------------------------------------

ENVELOPE_POLICY = HEADER + """
task k0 { tools t0  intents i0  data <= c1  ttl 30m  delegate { to a1  depth <= 1 } }
permit p
"""
EU, HUMAN = "spiffe://x/b/eu", {"principal": "user:alice", "kind": "human"}
K0 = {"kind": "k0", "started_at": T0}


def _call(task=None, chain=(), ended=False, store=False, **extra):
    req = {"agent": {"id": EU}, "tool": "t0", "now": T0, **extra}
    if task is not None:
        req["task"] = task
    if chain:
        req["chain"] = [HUMAN, *chain]
    return req, {"task_ended": ended, "store_unavailable": store}


def _full_session():
    """A call whose task's history is at the bound, as the task runtime would build it."""
    from agp.limits import MAX_SESSION_CALLS
    from agp.model import HistoryItem, HistoryView, SessionSummary

    req = agp.Request.model_validate({"agent": {"id": EU}, "tool": "t0", "now": T0,
                                      "task": K0})
    item = HistoryItem(tool="t0", decision="allow", at=T0)
    history = HistoryView([item] * MAX_SESSION_CALLS, MAX_SESSION_CALLS, SessionSummary.of([item]))
    task = req.task.model_copy(update={"history": history})
    return req.model_copy(update={"task": task}), {}


def _agent(principal=EU, **extra):
    return {"principal": principal, "kind": "agent", **extra}


# One call failing each row (and perhaps others).
FAILING = {
    "request.invalid": _call(task={"kind": "k0"}),  # k0 has a ttl: started_at is needed
    "request.unknown": _call(data=["zz"]),
    "task.unknown": _call(task={"kind": "kx"}),
    "task.expired": _call(task={**K0, "started_at": "2026-11-28T09:30:00Z"}),
    "task.ended": _call(task=K0, ended=True),
    "scope.tool": _call(task=K0, tool="t2"),
    "scope.intent": _call(task=K0, intent=["i1"]),
    "scope.data": _call(task=K0, data=["c2"]),
    "delegation.mismatch": _call(chain=[_agent("other")]),
    "delegation.cycle": _call(chain=[_agent(), HUMAN, _agent()]),
    "delegation.depth": _call(task=K0, chain=[_agent("spiffe://x/b/us"), _agent()]),
    "delegation.to": _call(task=K0, chain=[_agent("spiffe://x/a0"), _agent("other")],
                           agent={"id": "other"}),
    "delegation.scope": _call(chain=[_agent(scope={"tools": ["t2"]})]),
    "delegation.expired": _call(chain=[_agent(at="2026-11-28T09:55:00Z", scope={"ttl": "5m"})]),
    "identity.invalid": _call(agent={"id": EU, "svid": "bad"}),
    "identity.mismatch": _call(agent={"id": "other", "svid": f"good:{EU}"}),
    "identity.missing": _call(agent={"id": "strict:x"}),
    "store.unavailable": _call(store=True),
    "session.full": _full_session(),
}


@pytest.mark.parametrize("code", envelope.CODES)
def test_an_envelope_bug_shows_as_a_disagreement(code, monkeypatch):
    """The compiled evaluator computes the envelope with its own code (agp.compile.envelope), so
    the differential tests above compare two implementations of it: a reference row that never
    fails makes the evaluators disagree on a call that fails it."""
    policy, _ = check_text(ENVELOPE_POLICY)
    reference, compiled = both(policy)
    req, known = FAILING[code]
    assert code in reference.decide(req, **known).rules
    assert compiled.decide(req, **known) == reference.decide(req, **known)
    monkeypatch.setattr(envelope, "ROWS", tuple(
        (c, (lambda facts: False) if c == code else row) for c, row in envelope.ROWS))
    assert code not in reference.decide(req, **known).rules
    assert code in compiled.decide(req, **known).rules


# ---- tool names matching several globs (issue 16, items 10 and 13) -------------------------------

GLOB = st.text("ab.*?", min_size=1, max_size=5)


@st.composite
def glob_policies(draw) -> str:
    """Tool declarations and rules over overlapping globs (prefix, suffix, both, neither, `?`),
    exact names among them: the decision tree files globs by their literal ends."""
    parts = ["intent i0, i1", "dataclass c0", "dataclass c1 > c0", "task k0 { }",
             "tool t0 { intent i0  args { n: number } }"]
    for p in draw(st.lists(GLOB, max_size=6, unique=True)):
        intents = draw(st.sampled_from(["intent i0", "intent i1", "intent i0, i1", ""]))
        data = draw(st.sampled_from(["", "data c0", "data c1"]))
        parts.append(f'tool "{p}" {{ {intents} {data} }}')
    for k in range(draw(st.integers(1, 6))):
        on = draw(st.lists(st.one_of(GLOB.map(lambda p: f'"{p}"'),
                                     st.sampled_from(["intent i0", "intent i1", "t0"])),
                           min_size=1, max_size=3, unique=True))
        words = [draw(st.sampled_from(["permit", "forbid", "ask"])), f"r{k}",
                 "on " + ", ".join(on)]
        if draw(st.booleans()):
            words.append("in k0")
        if draw(st.booleans()):
            words.append(f"when args.n > {k} or data >= c1")
        parts.append(" ".join(words))
    return "\n".join(parts) + "\n"


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(glob_policies(), st.lists(st.tuples(st.text("ab.", max_size=6), st.booleans(),
                                           st.sampled_from([None, ["i0"], ["i1"]])),
                                 min_size=1, max_size=12))
def test_names_matching_several_globs_agree(text, calls):
    policy, _ = check_text(text)
    assume(policy is not None)
    reference, compiled = both(policy)
    for tool, in_task, intent in calls:
        req = {"agent": {"id": "a"}, "tool": tool, "args": {"n": 2}, "now": T0}
        if in_task:
            req["task"] = {"kind": "k0", "id": "t", "started_at": T0}
        if intent is not None:
            req["intent"] = intent
        assert compiled.decide(req) == reference.decide(req), f"\n{text}\nrequest: {req}"


def test_a_bundle_keeps_the_checkers_zero_of_an_empty_sum():
    """The zero of `sum` over no items comes from the checker (`0s` for a duration body): a
    bundle, which has no checker, must carry it."""
    policy, _ = check_text("tool t { args { l: list } }\n"
                           "permit r on t when sum(x in args.l: 1m) == 0s\n")
    bundled = agp.Engine(None, evaluator=compile_ir(loads(dumps(policy_to_ir(policy)))))
    req = {"agent": {"id": "a"}, "tool": "t", "args": {"l": []}, "now": T0}
    assert bundled.decide(req).decision == "allow"
    assert bundled.decide(req) == agp.Engine(policy, compiled=False).decide(req)

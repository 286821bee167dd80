"""Properties of `agp fmt` on generated policies: idempotent, and the formatted policy decides
every generated request exactly as the original does."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import agp
from agp.syntax.format import FormatError, format_text

DECLS = """import std.intents
dataclass public
dataclass pii > public
agent bot "spiffe://x/bot*"
tool t.read { intent read data public args { n: number, s: string } }
tool t.pay { intent payment data pii }
task job { tools t.* intents read, payment ttl 10m delegate { depth <= 2 } }
defaults { ttl 5m max_ttl 1h }
"""

ws = st.sampled_from([" ", "  ", "\n  ", " \n", "\t", "\n  # between\n  "])
LONG_LIST = "[" + ", ".join(f'"item number {i}"' for i in range(12)) + "]"
atoms = st.sampled_from(["args.n", "args.s", "1", "2.5", "-3", '"a"', '"b"', "true", "false",
                         "tool", "chain.depth", "5m", "task.age", "lower(args.s)", "[1, 2]",
                         "data", "pii", "public", "len(args.s)", LONG_LIST,
                         '"a string long enough to make the line it is on longer than the width"'])


def exprs():
    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(["and", "or"]), inner, ws).map(
                lambda t: f"{t[0]}{t[3]}{t[1]} {t[2]}"),
            st.tuples(inner, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "+", "-"]),
                      inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            inner.map(lambda e: f"not {e}"),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"-({e})"),
            inner.map(lambda e: f"any(x in [1, 2, 3]: x == ({e}))"),
            inner.map(lambda e: f"all(x in {LONG_LIST}: ({e}) or x in {LONG_LIST})"),
            st.sampled_from(["args has n", "task is job", "agent is bot", '"q" matches "q*"']),
        )
    return st.recursive(atoms, extend, max_leaves=6)


rules = st.lists(st.tuples(
    st.sampled_from(["permit", "forbid", "ask"]),
    st.sampled_from(["", " on t.read", " on t.*", " on intent payment", " on t.pay, t.read"]),
    st.sampled_from(["", " in job"]),
    st.sampled_from(["", " by bot"]),
    st.one_of(st.none(), exprs()),
    st.one_of(st.none(), exprs()),
    st.sampled_from(["", " ttl 1m", " ttl 90s"]),
    st.sampled_from(["", ' because "why"']),
    st.sampled_from(["", "  # note", "\n# own line", "\n## doc"]),
    ws,
), min_size=1, max_size=5)

requests = st.lists(st.fixed_dictionaries({
    "agent": st.sampled_from([{"id": "spiffe://x/bot-1"}, {"id": "spiffe://x/other"}]),
    "tool": st.sampled_from(["t.read", "t.pay", "t.other"]),
    "args": st.fixed_dictionaries({}, optional={"n": st.integers(-5, 5),
                                                "s": st.sampled_from(["a", "B", "q1"])}),
    "now": st.just("2026-01-01T10:05:00Z"),
}, optional={
    "task": st.just({"kind": "job", "id": "j", "started_at": "2026-01-01T10:00:00Z"}),
    "data": st.sampled_from([["pii"], ["public"]]),
}), min_size=1, max_size=6)


def policy_text(spec) -> str:
    parts = [DECLS]
    for i, (effect, on, in_, by, when, unless, ttl, because, comment, sep) in enumerate(spec):
        rule = f"{effect} r{i}{on}{in_}{by}"
        if when is not None:
            rule += f"{sep}when {when}"
        if unless is not None:
            rule += f" unless {unless}"
        parts.append(f"{comment.strip() if comment.startswith(chr(10)) else ''}\n"
                     f"{rule}{ttl}{because}{comment if not comment.startswith(chr(10)) else ''}")
    return "\n".join(parts) + "\n"


def comparable(d) -> tuple:
    # Error messages carry positions, which formatting moves: compare them without.
    errors = [re.sub(r"\S+:\d+:\d+: ", "", e) for e in d.errors]
    return d.decision, d.ttl, d.rules, d.reasons, errors


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rules, requests)
def test_fmt_is_idempotent_and_keeps_decisions(tmp_path, spec, reqs):
    text = policy_text(spec)
    try:
        formatted = format_text(text)
    except FormatError as exc:  # the generator can write `a == b == c`, which does not parse
        assume(not exc.diagnostics)
        raise
    assert format_text(formatted) == formatted
    (tmp_path / "a.agp").write_text(text)
    try:
        original = agp.load(str(tmp_path / "a.agp"))
    except agp.PolicyError:
        return  # a generated condition that does not type-check: no decisions to compare
    (tmp_path / "b.agp").write_text(formatted)
    again = agp.load(str(tmp_path / "b.agp"))
    for request in reqs:
        assert comparable(original.decide(request)) == comparable(again.decide(request))

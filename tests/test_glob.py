"""The one glob of the language, against an obviously correct reference, and on hostile input."""

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agp import glob
from agp.glob import Glob, compile_glob
from agp.limits import MAX_MATCH_WORK
from agp.values import EvalError, matches


def reference(pattern: str, subject: str) -> bool:
    """LANGUAGE.md's definition, as a memoised recursion (fine for small inputs)."""

    @cache
    def go(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(subject)
        if pattern[i] == "*":
            return go(i + 1, j) or (j < len(subject) and go(i, j + 1))
        if j < len(subject) and pattern[i] in ("?", subject[j]):
            return go(i + 1, j + 1)
        return False

    return go(0, 0)


ALPHABET = "ab./*?"


@settings(max_examples=2000)
@given(st.text(ALPHABET, max_size=8), st.text("ab./", max_size=10))
def test_glob_agrees_with_the_definition(pattern, subject):
    assert Glob(pattern).match(subject) == reference(pattern, subject)


def test_spec_examples():
    assert Glob("crm.*").match("crm.lookup")
    assert Glob("crm.*").match("crm.notes.read")
    assert Glob("spiffe://acme.com/agents/billing/*").match("spiffe://acme.com/agents/billing/eu-1")
    assert not Glob("crm.*").match("crm")
    assert Glob("a?c").match("abc") and not Glob("a?c").match("ac")


def test_hostile_patterns_on_a_megabyte_finish():
    # Backtracking matchers take exponential or polynomial time on these; ours is linear.
    subject = "a" * 1_000_000
    assert not Glob("*a*a*a*a*a*a*a*a*a*a*b").match(subject)
    assert not Glob("?*" * 50 + "b").match(subject)
    assert Glob("*" * 1000 + "a").match(subject)
    assert not Glob("a*" * 200 + "ab").match(subject)


@settings(max_examples=1000)
@given(st.text("ab?*", max_size=12), st.text("ab", max_size=14))
def test_pieces_with_inner_question_marks_agree_with_the_definition(pattern, subject):
    assert Glob(pattern).match(subject) == reference(pattern, subject)


# ---- worst cases (issue 16, item 12) --------------------------------------------------------------


def test_work_is_zero_unless_a_middle_piece_has_an_inner_question_mark():
    for linear in ("crm.*", "*.example.com", "a?c", "*??*", "*?a*b?*", "a*b?c", "x*??a??*y"):
        assert Glob(linear).linear and Glob(linear).work(10**6) == 0, linear
    assert Glob("*a?c*").work(1000) == 3000
    assert Glob("x*a?c*b?d*y").work(100) == 600
    assert Glob("*a?c*").work(2) == 0  # shorter than the pattern: nothing to search


def test_matches_refuses_a_costly_pattern_from_the_request():
    # The reproduction: 12 s before; now refused before any work (an evaluation error,
    # which never allows).
    subject, pattern = "a" * 200_000, "*" + "a?" * 50_000 + "b*"
    with pytest.raises(EvalError, match="pattern too costly"):
        matches(subject, pattern)
    # At the limit it still matches, and gives the right answer.
    core = "a?" * (MAX_MATCH_WORK // 4096 // 2 - 1) + "ab"
    assert len(core) * 4096 <= MAX_MATCH_WORK
    assert not matches("a" * 4096, "*" + core + "*")
    assert matches(core.replace("?", "z"), "*" + core + "*")


def test_long_patterns_without_inner_question_marks_match_in_linear_time():
    piece = "a" * 63 + "b"
    subject = piece * 16_384  # 1 MiB
    assert matches(subject, "*" + "*".join([piece] * 16_000) + "*")
    assert not matches(subject, "*" + "*".join([piece] * 16_000) + "*c")
    assert matches(subject, "?" * 63 + "b*" + "?" * 64)
    assert not matches("a" * 1_000_000, "*" + "a" * 99 + "b*")


def test_the_cache_keeps_only_short_patterns():
    before = glob._cached.cache_info().currsize
    for i in range(50):
        compile_glob(f"{i}*" + "x" * glob.CACHEABLE)
    assert glob._cached.cache_info().currsize == before
    compile_glob("short*pattern-for-the-cache-test")
    assert glob._cached.cache_info().currsize == before + 1
    # A cached glob is the same object; an uncached one is an equal glob.
    assert compile_glob("crm.*") is compile_glob("crm.*")
    long = "y" * (glob.CACHEABLE + 1) + "*"
    assert compile_glob(long) == compile_glob(long)


def test_a_costly_hop_scope_pattern_matches_nothing():
    # Hop scopes carry patterns from the request too; one too costly to match refuses the call
    # (`delegation.scope`) instead of taking seconds.
    import agp
    from agp.compile import compile_policy
    from agp.loader import check_sources
    from agp.source import Source

    policy, _ = check_sources([Source("p.agp", "permit anything\n")])
    tool = "a" * 200_000

    def decide(pattern):
        request = {"agent": {"id": "spiffe://x/a"}, "tool": tool, "now": "2026-11-28T09:00:00Z",
                   "chain": [{"principal": "user:x", "kind": "human"},
                             {"principal": "spiffe://x/a", "kind": "agent",
                              "scope": {"tools": [pattern]}}]}
        want = agp.Engine(policy, compiled=False).decide(request)
        assert agp.Engine(policy, evaluator=compile_policy(policy)).decide(request) == want
        return want

    assert decide("a*").decision == "allow"
    assert decide("*" + "a?" * 50_000 + "b*").rules == ["delegation.scope"]
    assert decide("*" + "?" * 50_000 + "a*").decision == "allow"  # `?` only at an end: linear


# ---- many patterns at once (issue 16, item 13) ----------------------------------------------------


def plain_related(patterns: list[str], query: str) -> list[int]:
    """The relation the checker needs, as a plain scan: every pattern tried."""
    q = Glob(query)
    return [i for i, p in enumerate(patterns) if q.relates(Glob(p))]


# Names and patterns over a small alphabet, so that prefixes, suffixes and stars collide often;
# `*` and `?` also appear in the texts matched as plain names (a pattern against a pattern).
PATTERN = st.text("ab.*?", min_size=0, max_size=6)


@settings(max_examples=500, deadline=None)
@given(st.lists(PATTERN, max_size=14), st.lists(PATTERN, min_size=1, max_size=10),
       st.data())
def test_pattern_set_relates_exactly_as_the_plain_scan(patterns, queries, data):
    index = glob.PatternSet((i, compile_glob(p)) for i, p in enumerate(patterns))
    if patterns:  # the declared texts themselves, and variations of them, as queries
        queries += data.draw(st.lists(st.sampled_from(patterns), max_size=4))
    for query in queries:
        assert index.related(query) == plain_related(patterns, query), query


def test_pattern_set_examples():
    patterns = ["crm.lookup", "crm.*", "http.*", "*.delete", "*", "a?c", "crm.lookup"]
    index = glob.PatternSet((i, compile_glob(p)) for i, p in enumerate(patterns))
    assert index.related("crm.lookup") == [0, 1, 4, 6]  # duplicates are both found
    assert index.related("crm.*") == [0, 1, 4, 6]  # matches the names, and `crm.*` itself
    assert index.related("http.*.x") == [2, 4]  # read as a name, `http.*` matches it
    assert index.related("*.get") == [4]  # `http.*` and `*.get` share names, but neither
    assert index.related("files.delete") == [3, 4]  # matches the other: not related
    assert index.related("abc") == [4, 5] and index.related("a?c") == [4, 5]
    assert index.related("*") == list(range(len(patterns)))
    assert glob.PatternSet([]).related("*") == []


def test_pattern_set_tries_few_patterns_for_the_usual_shapes(monkeypatch):
    # 3,000 exact names and 3,000 families against 6,000 queries of four shapes: a plain scan
    # tries every pair (36 million matches); the index tries about the matches it finds.
    n = 3000
    patterns = [f"s{i % 7}.op{i}" for i in range(n)] + [f"g{i % 7}.op{i}.*" for i in range(n)]
    queries = ([f"s{j % 7}.op{j}*" for j in range(0, n, 2)] + [f"*.op{j}" for j in range(1, n, 2)]
               + [f"g{j % 7}.op{j}.x" for j in range(0, n, 2)]
               + [f"g{j % 7}.op{j}*" for j in range(1, n, 2)])
    index = glob.PatternSet((i, compile_glob(p)) for i, p in enumerate(patterns))
    tried = []
    match = Glob.match
    monkeypatch.setattr(Glob, "match", lambda g, s: tried.append(1) or match(g, s))
    found = [index.related(q) for q in queries]
    monkeypatch.undo()
    assert len(tried) < 5 * (len(patterns) + len(queries))
    assert sum(map(len, found)) >= len(queries)  # every query relates to something
    assert found[7] == [14, 140, 147, *range(1400, 1500, 7)]  # s0.op14* against s0.op14...
    assert found[n // 2 + 5] == [11]  # *.op11: the name s4.op11 ends so, no family does
    assert found[n + 3] == [n + 6]  # g6.op6.x: matched by the family g6.op6.*
    assert found[3 * n // 2 + 10][:3] == [n + 21, n + 210, n + 217]  # g0.op21*: g0.op21.*, ...
    for k in range(0, len(queries), 97):  # a sample, against the plain scan
        assert found[k] == plain_related(patterns, queries[k]), queries[k]

"""The one glob of the language, against an obviously correct reference, and on hostile input."""

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from agp.glob import Glob


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

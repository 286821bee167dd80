"""The one glob of the language: `*` any run (`/` and `.` included), `?` one character.

Matching never backtracks: the pattern is cut at its stars, the first piece must match at the
start, the last at the end, and the others are found left to right, each at its leftmost place
after the previous one, which is exact for this glob. A piece is searched with `str.find` (linear
in the subject) once the `?`s at its ends are taken as fixed offsets. Only a piece with a `?`
between literal characters (`a?c`) needs a character-by-character search, which costs up to the
subject's length times the piece's: `Glob.work` says how much, so that `matches` with a pattern
from a request can refuse one that is too costly (agp.limits.MAX_MATCH_WORK).

Matching a long subject spends steps from the evaluation budget (agp.budget), like every other
operation that reads a long string.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import TypeAlias, cast

from agp import budget


class _Piece:
    """A run of the pattern between two stars: `?`s at the ends, then a core."""

    __slots__ = ("size", "lead", "core", "trail", "_regex")

    def __init__(self, text: str):
        self.size = len(text)
        core = text.lstrip("?")
        self.lead = len(text) - len(core)
        self.core = core.rstrip("?")
        self.trail = len(core) - len(self.core)
        self._regex: re.Pattern[str] | None = None

    @property
    def wild(self) -> bool:
        """Whether a `?` lies between literal characters (the search is then not linear)."""
        return "?" in self.core

    def _pattern(self) -> re.Pattern[str]:
        if self._regex is None:  # compiled on first use: most patterns never need it
            self._regex = re.compile(
                "".join("." if ch == "?" else re.escape(ch) for ch in self.core), re.DOTALL)
        return self._regex

    def at(self, subject: str, i: int) -> bool:
        """Whether the piece matches at `i` (the caller checked that it fits)."""
        if not self.core:
            return True
        start = i + self.lead
        if self.wild:
            return self._pattern().match(subject, start) is not None
        return subject.startswith(self.core, start)

    def find(self, subject: str, start: int, end: int) -> int:
        """The leftmost `i >= start` where the piece matches and ends by `end`, or -1."""
        if start + self.size > end:
            return -1
        if not self.core:
            return start
        lo, hi = start + self.lead, end - self.trail
        if self.wild:
            found = self._pattern().search(subject, lo, hi)
            return -1 if found is None else found.start() - self.lead
        j = subject.find(self.core, lo, hi)
        return -1 if j < 0 else j - self.lead


def is_exact(pattern: str) -> bool:
    """Whether `pattern` has no wildcard: it matches itself only (without building its Glob)."""
    return "*" not in pattern and "?" not in pattern


class Glob:
    __slots__ = ("pattern", "_exact", "_pieces", "_min", "_wild")

    def __init__(self, pattern: str):
        self.pattern = pattern
        self._exact = pattern if is_exact(pattern) else None
        self._pieces = () if self._exact is not None else tuple(
            _Piece(p) for p in pattern.split("*"))
        self._min = len(pattern) - pattern.count("*")  # the shortest subject that can match
        # characters of the pieces searched character by character
        self._wild = sum(len(p.core) for p in self._pieces[1:-1] if p.wild)

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Glob) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    @property
    def is_exact(self) -> bool:
        return self._exact is not None

    @property
    def linear(self) -> bool:
        """Whether matching is linear in the subject (`work` is always 0)."""
        return self._wild == 0

    def work(self, n: int) -> int:
        """At most how many characters matching a subject of length `n` compares beyond a linear
        pass: 0 unless a middle piece has a `?` between literal characters.

        >>> Glob("*.example.com").work(10**6), Glob("*a?c*").work(1000)
        (0, 3000)
        """
        return n * self._wild if n >= self._min else 0

    def match(self, subject: str) -> bool:
        """Whole-string match.

        >>> Glob("crm.*").match("crm.notes.read"), Glob("a?c").match("abc"), Glob("a*").match("ba")
        (True, True, False)
        """
        n = len(subject)
        if n >= budget.STRING_CHUNK:
            budget.spend_text(n + self.work(n))
        if self._exact is not None:
            return subject == self._exact
        if n < self._min:
            return False
        pieces = self._pieces
        first = pieces[0]
        if len(pieces) == 1:
            return n == first.size and first.at(subject, 0)
        if not first.at(subject, 0):
            return False
        last = pieces[-1]
        pos, end = first.size, n - last.size
        if not last.at(subject, end):
            return False
        for piece in pieces[1:-1]:
            found = piece.find(subject, pos, end)
            if found < 0:
                return False
            pos = found + piece.size
        return True

    def relates(self, other: Glob) -> bool:
        """Whether either pattern, read as a plain name, matches the other (LANGUAGE.md §4).

        >>> Glob("crm.*").relates(Glob("crm.lookup")), Glob("http.get").relates(Glob("http.*"))
        (True, True)
        """
        return self.match(other.pattern) or other.match(self.pattern)


# Requests carry patterns too (`x matches args.p`, hop scopes): only short ones are kept, so the
# cache holds at most CACHED * CACHEABLE characters of patterns, whatever requests send.
CACHED = 4096
CACHEABLE = 256


@lru_cache(maxsize=CACHED)
def _cached(pattern: str) -> Glob:
    return Glob(pattern)


def compile_glob(pattern: str) -> Glob:
    return _cached(pattern) if len(pattern) <= CACHEABLE else Glob(pattern)


# ---- many patterns at once: which relate to a name or a pattern, without trying every one ------

_LITERAL_HEAD = re.compile(r"[^*?]*")
_LITERAL_TAIL = re.compile(r"[^*?]*\Z")
_HERE = ""  # the trie key of a node's own globs (never a character of a name)

_Entry: TypeAlias = tuple[int, Glob]  # (key, glob) as given to GlobSet and PatternSet
# A trie node: the node of each next character, and under _HERE the entries filed at the node
# itself. The casts below tell the two apart by their key, as the code does (they are strings,
# so that nothing is built at run time).
_Trie: TypeAlias = dict[str, "_Trie | list[_Entry]"]


def _literal_ends(pattern: str) -> tuple[str, str]:
    """The literal prefix and suffix of a pattern (either may be empty)."""
    head, tail = _LITERAL_HEAD.match(pattern), _LITERAL_TAIL.search(pattern)
    assert head is not None and tail is not None  # both regexes match any text, if only ""
    return head.group(), tail.group()


def _file(trie: _Trie, chars: Iterable[str], entry: _Entry) -> None:
    node = trie
    for ch in chars:
        node = cast("_Trie", node.setdefault(ch, {}))
    cast("list[_Entry]", node.setdefault(_HERE, [])).append(entry)


def _walk(trie: _Trie, chars: Iterable[str]) -> Iterator[_Entry]:
    """The globs filed under every prefix of `chars` (walks no further than the trie is deep)."""
    node = trie
    yield from cast("Iterable[_Entry]", node.get(_HERE, ()))
    for ch in chars:
        child = node.get(ch)
        if child is None:
            return
        node = cast("_Trie", child)
        yield from cast("Iterable[_Entry]", node.get(_HERE, ()))


class GlobSet:
    """Which of many globs match a name, without trying every one.

    Each glob is filed in a trie under the longer of its literal prefix and its literal suffix
    (suffixes in a second trie, read backwards). A name walks both tries only as far as they have
    a branch for its next character, and only the globs met on the way, plus those that begin and
    end with a wildcard, are matched. For the usual shapes (`crm.*`, `*.delete`) the cost is a
    few dict lookups and the matches that succeed.

    >>> g = compile_glob
    >>> s = GlobSet([(0, g("crm.*")), (1, g("*.read")), (2, g("*")), (3, g("crm.n*s*"))])
    >>> s.matching("crm.notes.read"), s.matching("http.get")
    ([0, 1, 2, 3], [2])
    """

    def __init__(self, items: Iterable[_Entry]):
        self.items = list(items)  # (key, glob), as given
        self._prefix: _Trie = {}
        self._suffix: _Trie = {}
        self._rest: list[_Entry] = []
        for key, g in self.items:
            head, tail = _literal_ends(g.pattern)
            if len(head) >= len(tail) and head:
                _file(self._prefix, head, (key, g))
            elif tail:
                _file(self._suffix, reversed(tail), (key, g))
            else:
                self._rest.append((key, g))

    def matching(self, name: str) -> list[int]:
        """The keys of the globs that match `name`, sorted."""
        if not self.items:
            return []
        found = [k for k, g in self._rest if g.match(name)]
        found.extend(k for k, g in _walk(self._prefix, name) if g.match(name))
        found.extend(k for k, g in _walk(self._suffix, reversed(name)) if g.match(name))
        found.sort()
        return found


def _starting_with(texts: list[str], prefix: str) -> range:
    """The positions of the sorted `texts` that start with `prefix` (cutting every text to the
    prefix's length keeps them sorted, so two bisections find them)."""
    k = len(prefix)

    def cut(text: str) -> str:
        return text[:k]

    lo = bisect_left(texts, prefix, key=cut)
    return range(lo, bisect_right(texts, prefix, lo, key=cut))


class PatternSet:
    """Which of many patterns relate to a pattern (`Glob.relates`: either one, read as a plain
    name, matches the other), without trying every one.

    This is the checker's question for a tool pattern in a rule or a task, against the tool
    declarations. Its two halves have an index each:

    - the patterns that match the query read as a name: a `GlobSet` of those with a wildcard, a
      dict of the exact ones (an exact query also matches exactly those: its own text);
    - the patterns that a query with a wildcard matches, read as names: each such name starts
      with the query's literal prefix and ends with its literal suffix, so the texts are kept
      sorted forwards and backwards, and only those of the narrower of the two sorted ranges are
      tried.

    For the usual shapes (`svc1.*` against `svc1.op7`, `*.delete`) either costs a few lookups plus
    the matches found; only a query with no literal end at all (`*admin*`) tries every text.

    >>> g = compile_glob
    >>> s = PatternSet([(0, g("crm.lookup")), (1, g("crm.*")), (2, g("http.*"))])
    >>> s.related("crm.*"), s.related("crm.lookup"), s.related("http.*.x"), s.related("*.get")
    ([0, 1], [0, 1], [2], [])
    """

    def __init__(self, items: Iterable[_Entry]):
        self.items = list(items)  # (key, glob), as given
        self._exact: dict[str, list[int]] = {}
        for key, g in self.items:
            if g.is_exact:
                self._exact.setdefault(g.pattern, []).append(key)
        self._globs = GlobSet((key, g) for key, g in self.items if not g.is_exact)
        self._forward = sorted(self.items, key=lambda item: item[1].pattern)
        self._forward_texts = [g.pattern for _, g in self._forward]
        self._backward = sorted(self.items, key=lambda item: item[1].pattern[::-1])
        self._backward_texts = [g.pattern[::-1] for _, g in self._backward]

    def related(self, pattern: str) -> list[int]:
        """The keys of the patterns that relate to `pattern`, sorted."""
        found = set(self._exact.get(pattern, ()))
        found.update(self._globs.matching(pattern))
        query = compile_glob(pattern)
        if not query.is_exact:
            head, tail = _literal_ends(pattern)
            ahead = _starting_with(self._forward_texts, head)
            behind = _starting_with(self._backward_texts, tail[::-1])
            if len(ahead) <= len(behind):
                candidates = self._forward[ahead.start:ahead.stop]
            else:
                candidates = self._backward[behind.start:behind.stop]
            found.update(key for key, g in candidates if query.match(g.pattern))
        return sorted(found)

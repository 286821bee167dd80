"""The one glob of the language: `*` any run (`/` and `.` included), `?` one character.

Matching never backtracks: the pattern is cut at its stars and the pieces are found left to right,
each at its leftmost place, which is exact for this glob. Time is linear in the subject for a
given pattern (at worst subject length times piece length), whatever the pattern.
"""

from __future__ import annotations

import re
from functools import lru_cache


class Glob:
    __slots__ = ("pattern", "_exact", "_pieces")

    def __init__(self, pattern: str):
        self.pattern = pattern
        self._exact = None if ("*" in pattern or "?" in pattern) else pattern
        # Each piece between stars becomes a regex without quantifiers: no backtracking.
        self._pieces = [] if self._exact is not None else [
            (re.compile("".join("." if ch == "?" else re.escape(ch) for ch in piece), re.DOTALL),
             len(piece))
            for piece in pattern.split("*")
        ]

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Glob) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    @property
    def is_exact(self) -> bool:
        return self._exact is not None

    def match(self, subject: str) -> bool:
        """Whole-string match.

        >>> Glob("crm.*").match("crm.notes.read"), Glob("a?c").match("abc"), Glob("a*").match("ba")
        (True, True, False)
        """
        if self._exact is not None:
            return subject == self._exact
        pieces = self._pieces
        first, first_len = pieces[0]
        if first.match(subject) is None:
            return False
        if len(pieces) == 1:
            return first_len == len(subject)
        pos = first_len
        last, last_len = pieces[-1]
        end_start = len(subject) - last_len
        if end_start < pos or last.match(subject, end_start) is None:
            return False
        for piece, _ in pieces[1:-1]:
            found = piece.search(subject, pos, end_start)
            if found is None:
                return False
            pos = found.end()
        return True

    def relates(self, other: Glob) -> bool:
        """Whether either pattern, read as a plain name, matches the other (LANGUAGE.md §4).

        >>> Glob("crm.*").relates(Glob("crm.lookup")), Glob("http.get").relates(Glob("http.*"))
        (True, True)
        """
        return self.match(other.pattern) or other.match(self.pattern)


@lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> Glob:
    return Glob(pattern)

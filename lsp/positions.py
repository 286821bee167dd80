"""Character offsets (what a Span holds) to LSP positions and back.

A Span counts Python characters (code points). LSP counts lines split at `\\n`, `\\r\\n` or `\\r`,
and columns in the code units of the negotiated encoding: UTF-16 unless the client offered
another. A character outside the Basic Multilingual Plane is two UTF-16 units, so an emoji in a
string before a name moves every column after it on that line.

    >>> idx = LineIndex('x = "😋" y')
    >>> idx.position(8).character        # `y`, the 9th character
    9
    >>> idx.offset(idx.position(8))
    8
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from functools import lru_cache

from lsprotocol import types as lsp

_BREAK = re.compile(r"\r\n|\r|\n")
_UNITS: dict[str, Callable[[str], int]] = {
    "utf-8": lambda ch: len(ch.encode("utf-8")),
    "utf-16": lambda ch: 2 if ord(ch) > 0xFFFF else 1,
    "utf-32": lambda ch: 1,
}


class LineIndex:
    """Line starts of one text, for converting offsets in the client's encoding."""

    def __init__(self, text: str, encoding: str = "utf-16") -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in _BREAK.finditer(text)]
        self.units = _UNITS.get(str(encoding), _UNITS["utf-16"])
        self.wide = encoding != "utf-32" and not text.isascii()

    def _line_end(self, line: int) -> int:
        """The offset where a line's text ends (before its line break)."""
        if line + 1 < len(self.starts):
            end = self.starts[line + 1]
            return end - (2 if self.text[end - 2 : end] == "\r\n" else 1)
        return len(self.text)

    def position(self, offset: int) -> lsp.Position:
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.starts, offset) - 1
        start = self.starts[line]
        col = offset - start
        if self.wide:
            col = sum(self.units(ch) for ch in self.text[start:offset])
        return lsp.Position(line=line, character=col)

    def offset(self, position: lsp.Position) -> int:
        if position.line >= len(self.starts):
            return len(self.text)
        start, end = self.starts[position.line], self._line_end(position.line)
        if not self.wide:
            return min(start + position.character, end)
        units = 0
        for i in range(start, end):
            if units >= position.character:
                return i
            units += self.units(self.text[i])
        return end

    def range(self, start: int, end: int) -> lsp.Range:
        return lsp.Range(start=self.position(start), end=self.position(end))


@lru_cache(maxsize=64)
def line_index(text: str, encoding: str = "utf-16") -> LineIndex:
    return LineIndex(text, encoding)


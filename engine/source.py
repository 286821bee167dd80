"""Policy source text and the spans that point into it."""

from __future__ import annotations

import bisect
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO


@dataclass(eq=False)
class Source:
    """One policy file: its display name and its text. Compared by identity."""

    name: str
    text: str

    def __repr__(self) -> str:
        return f"Source({self.name!r})"

    @cached_property
    def line_starts(self) -> list[int]:
        # str.find, not a loop over characters: a policy file may be megabytes on few lines.
        starts, find, i = [0], self.text.find, -1
        while (i := find("\n", i + 1)) >= 0:
            starts.append(i + 1)
        return starts

    def position(self, offset: int) -> tuple[int, int]:
        """1-based line and column (in characters) of an offset.

        >>> Source("a.agp", "ab\\ncd").position(4)
        (2, 2)
        """
        line = bisect.bisect_right(self.line_starts, offset) - 1
        return line + 1, offset - self.line_starts[line] + 1

    def line_text(self, line: int) -> str:
        start = self.line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)]


@dataclass(frozen=True, slots=True)
class Span:
    """A range of characters [start, end) in a Source."""

    source: Source
    start: int
    end: int

    @property
    def line(self) -> int:
        return self.source.position(self.start)[0]

    @property
    def column(self) -> int:
        return self.source.position(self.start)[1]

    @property
    def end_position(self) -> tuple[int, int]:
        return self.source.position(self.end)

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    def __str__(self) -> str:
        return f"{self.source.name}:{self.line}:{self.column}"


@contextmanager
def replaced(path: Path) -> Iterator[BinaryIO]:
    """Write a new version of a user's file atomically, keeping its permissions.

    What is written to the yielded file replaces `path` only when the block ends without an
    exception, so an interrupted `agp fmt` or `agp test --update` never leaves half a file.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

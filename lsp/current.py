"""A document as completion and hover see it: its current text, read against the last finished
analysis of its set, so that a request never waits for (or repeats) a check.

After a keystroke the diagnostics check the new text on a worker thread; parsing and checking a
2,000-line file takes tens of milliseconds, and a completion asked meanwhile that did the same
work itself would cost as much and take the processor from that check. Instead a request takes the set's last finished analysis and the one stretch where
the current text differs from the text that analysis read (`Edit`: the common prefix and suffix of
the two). Outside that stretch the analysis is exact, offsets shifted. Inside it, only the items
the stretch touches are lexed and parsed again (a few items, whatever the size of the file), and
what they declare is added to the analysis's names: a name declared in the same edit is offered
at once. What no longer holds (a name deleted by the edit) is still offered until the check of the
new text finishes, a fraction of a second later.

The same comparison tells the diagnostics when a check can be skipped: an edit inside a comment
(`inside_a_comment`, `diagnostics.unchanged`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from agp.limits import MAX_POLICY_FILE_BYTES
from agp.lsp.occurrences import Occurrences
from agp.lsp.positions import LineIndex
from agp.lsp.project import EAGER_PARSE_CHARS, Analysis
from agp.source import Source, Span
from agp.syntax import ParsedFile, ast, parse


@dataclass(frozen=True, slots=True)
class Edit:
    """Where a new text differs from an old one: old[start:old_end] became new[start:new_end];
    what comes before `start` and after the ends is the same in both."""

    start: int
    old_end: int
    new_end: int

    @property
    def none(self) -> bool:
        return self.start == self.old_end == self.new_end

    def to_old(self, offset: int) -> int | None:
        """The offset in the old text of the same character, None inside the changed stretch (a
        cursor just after the stretch is outside it)."""
        if offset <= self.start:
            return offset
        if offset >= self.new_end:
            return offset - self.new_end + self.old_end
        return None


def diff(old: str, new: str) -> Edit:
    """The one stretch where `new` differs from `old`. Binary searches over slices compared in C:
    well under a millisecond for a large file, where a loop over characters would take tens."""
    most = min(len(old), len(new))
    lo, hi = 0, most  # the common prefix is at least lo and at most hi characters long
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if old[lo:mid] == new[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    prefix = lo
    lo, hi = 0, most - prefix  # the common suffix, not overlapping the prefix
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if old[len(old) - mid : len(old) - lo] == new[len(new) - mid : len(new) - lo]:
            lo = mid
        else:
            hi = mid - 1
    return Edit(prefix, len(old) - lo, len(new) - lo)


@dataclass(frozen=True)
class Current:
    """One open document for a request: its current text, and the names of its set."""

    analysis: Analysis  # the set's last finished analysis
    file: ParsedFile  # the document as that analysis read it
    text: str  # the document's current text
    edit: Edit  # from `file.source.text` to `text`
    names: Occurrences  # the analysis's names, plus those declared in the changed items
    lines: LineIndex  # of `text`

    @property
    def source(self) -> Source:
        return self.file.source

    def item_start(self, offset: int) -> int:
        """A place at or before `offset` where an item starts in the current text, close to it,
        for lexing only the item under a cursor instead of the whole file (0 if none is known)."""
        return _item_start(self.file, min(offset, self.edit.start))


def current(analysis: Analysis, file: ParsedFile, text: str, lines: LineIndex) -> Current:
    """`file` of `analysis`, seen with its current `text`."""
    edit = diff(file.source.text, text)
    names = analysis.occurrences
    if not edit.none:
        names = names.plus(_typed(file, text, edit))
    return Current(analysis, file, text, edit, names, lines)


def _typed(file: ParsedFile, text: str, edit: Edit) -> list[ast.Item]:
    """The items of the current text around the edit, parsed alone: from an item start before
    it to the first item of the analysis after it."""
    start = _item_start(file, edit.start)
    starts = [item.span.start for item in file.items]
    j = bisect.bisect_left(starts, edit.old_end + 2)
    end = len(text) if j >= len(starts) else starts[j] - edit.old_end + edit.new_end
    if end - start > EAGER_PARSE_CHARS:  # a file of few items that parse: wait for the check
        return []
    return list(parse(Source(file.source.name, text[start:end])).items)


def _item_start(file: ParsedFile, before: int) -> int:
    """An offset before `before` where an item starts, in the analysed text and in any text
    that only differs from it from `before` on (0 if none is known).

    It is the end of a parsed item that lies before `before`, one item further back than needed:
    where an item starts in the token stream depends on a few tokens around it, and a parsed
    item's chunk may carry an unparsed tail (a recovered item)."""
    ends = sorted(item.span.end for item in file.items)
    i = bisect.bisect_right(ends, before - 2) - 2  # a token's match looks two characters ahead
    return ends[i] if i >= 0 else 0


def shifted(cur: Current, span: Span) -> tuple[int, int] | None:
    """Where a span of the analysed file is in the current text; None if the edit touched it,
    even only at one end (`bot` typed on into `bots` is not the name `bot` any more)."""
    edit = cur.edit
    if edit.none or span.end < edit.start:
        return span.start, span.end
    if span.start > edit.old_end:
        return span.start - edit.old_end + edit.new_end, span.end - edit.old_end + edit.new_end
    return None


def inside_a_comment(file: ParsedFile, text: str) -> bool:
    """Whether `text` differs from the analysed text of `file` at most inside one plain comment
    (`#`, not a `##` doc comment), without a line break typed or removed: then checking `text`
    would give exactly the diagnostics the analysis gave. The tokens are the same, and at the same
    lines and columns (a comment ends its line); no doc changes, nor does any `##` come or go (the
    edit starts after the comment's second character); the size limit is far away.
    """
    edit = diff(file.source.text, text)
    if edit.none:
        return True
    changed = file.source.text[edit.start : edit.old_end] + text[edit.start : edit.new_end]
    if "\n" in changed or "\r" in changed or 4 * max(len(text), len(file.source.text)) > \
            MAX_POLICY_FILE_BYTES:
        return False
    return any(c.span.start + 2 <= edit.start and edit.old_end <= c.span.end and not c.is_doc
               for c in file.comments)

"""Folding ranges: items over several lines, their `{...}` blocks, and runs of comment lines."""

from __future__ import annotations

from lsprotocol import types as lsp

from agp.lsp import cursor
from agp.lsp.context import AgpServer
from agp.syntax.parser import Comment


def folding_range(ls: AgpServer, params: lsp.FoldingRangeParams) -> list[lsp.FoldingRange]:
    at = ls.at(params.text_document.uri)
    if at is None:
        return []
    text, lines = at.file.source.text, at.lines
    out: list[lsp.FoldingRange] = []

    def add(start: int, end: int, kind: lsp.FoldingRangeKind | None = None) -> None:
        a, b = lines.position(start).line, lines.position(end).line
        if b > a:
            out.append(lsp.FoldingRange(start_line=a, end_line=b, kind=kind))

    for item in at.file.items:
        add(item.span.start, item.span.end)
    stack: list[int] = []
    for tok in cursor.tokens(text):
        if tok.value == "{" and tok.type != "STRING":
            stack.append(cursor.start_of(tok))
        elif tok.value == "}" and tok.type != "STRING" and stack:
            add(stack.pop(), cursor.start_of(tok))
    run: list[Comment] = []
    for c in [*cursor.comments(text), None]:
        if c is not None and run and lines.position(c.span.start).line == \
                lines.position(run[-1].span.start).line + 1:
            run.append(c)
            continue
        if len(run) > 1:
            add(run[0].span.start, run[-1].span.start, lsp.FoldingRangeKind.Comment)
        run = [c] if c is not None else []
    unique = {(r.start_line, r.end_line): r for r in out}
    return sorted(unique.values(), key=lambda r: (r.start_line, -r.end_line))

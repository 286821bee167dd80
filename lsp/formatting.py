"""Formatting: the whole document through `agp fmt`'s formatter, as one edit.

A document that does not parse is left as it is (the diagnostics already say why), as `agp fmt`
leaves such a file.
"""

from __future__ import annotations

from lsprotocol import types as lsp

from agp.lsp.context import AgpServer
from agp.syntax.format import FormatError, format_text


def formatting(ls: AgpServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    text = doc.source
    try:
        new = format_text(text, doc.path or doc.uri)
    except FormatError:
        return None
    if new == text:
        return []
    return [lsp.TextEdit(range=ls.lines(text).range(0, len(text)), new_text=new)]

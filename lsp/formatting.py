"""Formatting: the whole document through `agp fmt`'s formatter, as one edit."""

from __future__ import annotations

import importlib

from lsprotocol import types as lsp

from agp.lsp.context import AgpServer


def _formatter():
    try:
        module = importlib.import_module("agp.syntax.format")
    except ModuleNotFoundError:
        return None
    return getattr(module, "format_text", None) or getattr(module, "format_source", None)


def available() -> bool:
    return _formatter() is not None


def formatting(ls: AgpServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    fmt = _formatter()
    try:
        new = fmt(doc.source)
    except Exception:  # a file that does not parse is left alone, as `agp fmt` leaves it
        return None
    if not isinstance(new, str) or new == doc.source:
        return []
    lines = ls.lines(doc.source)
    return [lsp.TextEdit(range=lines.range(0, len(doc.source)), new_text=new)]

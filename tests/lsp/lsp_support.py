"""Helpers for the language-server tests: opening documents and waiting for diagnostics."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types as lsp

PUBLISH = lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS
TIMEOUT = 20  # seconds before a wait that the server never answers fails


async def until(client, predicate, timeout: float = TIMEOUT):
    """Wait for diagnostics notifications until `predicate()` holds; return its value."""

    async def loop():
        while not (value := predicate()):
            await client.wait_for_notification(PUBLISH)
        return value

    return await asyncio.wait_for(loop(), timeout)


def open_doc(client, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(
        uri=uri, language_id="agp", version=version,
        text=path.read_text(encoding="utf-8") if text is None else text)))
    return uri


def change_doc(client, uri: str, text: str, version: int) -> None:
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)]))


def position_of(text: str, needle: str, delta: int = 0) -> lsp.Position:
    """The LSP position (UTF-16) of the first `needle` in text, moved `delta` characters."""
    offset = text.index(needle) + delta
    line = text.count("\n", 0, offset)
    col = offset - (text.rfind("\n", 0, offset) + 1)
    prefix = text[offset - col : offset]
    return lsp.Position(line=line, character=len(prefix.encode("utf-16-le")) // 2)


async def opened(client, path: Path, text: str | None = None):
    """Open a document and wait until the server has published its diagnostics."""
    uri = open_doc(client, path, text)
    await until(client, lambda: uri in client.diagnostics)
    return uri

"""Helpers for the language-server tests: opening documents, waiting for diagnostics, and a raw
client for messages a well-behaved client never sends."""

from __future__ import annotations

import asyncio
import json
import sys
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


class RawServer:
    """`python -m agp.lsp` spoken to byte by byte: for what pygls' client will not send (a request
    whose params do not fit their type) and for reading what the server writes to stderr."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.notifications: list[dict] = []
        self._ids = 0

    @classmethod
    async def start(cls, root: Path) -> RawServer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agp.lsp", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        server = cls(proc)
        answer = await server.request("initialize", {
            "processId": None, "rootUri": root.as_uri(), "capabilities": {},
            "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}]})
        assert "result" in answer, answer
        server.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        return server

    def send(self, message: dict) -> None:
        body = json.dumps(message).encode("utf-8")
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def open(self, path: Path, text: str) -> str:
        uri = path.as_uri()
        self.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "agp", "version": 1, "text": text}}})
        return uri

    async def request(self, method: str, params: dict) -> dict:
        """Send a request; return its response (`result` or `error`), keeping notifications."""
        self._ids += 1
        self.send({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self._read(), TIMEOUT)
            if message.get("id") == self._ids and "method" not in message:
                return message
            if "id" not in message:
                self.notifications.append(message)

    async def _read(self) -> dict:
        length = None
        while (line := await self.proc.stdout.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("ascii").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        assert length is not None, "the server closed its output"
        return json.loads(await self.proc.stdout.readexactly(length))

    async def close(self) -> str:
        """Shut the server down as an editor does; return everything it wrote to stderr."""
        await self.request("shutdown", None)
        self.send({"jsonrpc": "2.0", "method": "exit"})
        self.proc.stdin.close()
        stderr = await asyncio.wait_for(self.proc.stderr.read(), TIMEOUT)
        await asyncio.wait_for(self.proc.wait(), TIMEOUT)
        return stderr.decode("utf-8", "replace")

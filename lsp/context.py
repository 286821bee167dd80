"""The server object every feature receives: the workspace's policy sets and the open documents.

Threads. pygls reads the client's messages and runs handlers on one asyncio loop. Parsing and
checking can take seconds on a huge file, so none of it runs there: every request handler runs on
a worker thread (`off_loop`), and so do the checks behind the diagnostics (`diagnostics.py`). The
loop only reads messages, records document changes and sends answers, so a slow file never holds
up the answers about the others.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cattrs import transform_error
from cattrs.errors import ClassValidationError
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from agp import __version__
from agp.lsp.current import Current, current
from agp.lsp.positions import LineIndex, line_index
from agp.lsp.project import Analysis, Project, uri_to_path
from agp.lsp.traces import TraceRuns
from agp.source import Span
from agp.syntax import ParsedFile

P = TypeVar("P")
R = TypeVar("R")
logger = logging.getLogger("agp.lsp")
# Requests and checks under way at the same time. Most of them wait (for the parse of a huge file
# that another thread is doing, say) rather than compute, so there are enough of them that an
# editor's burst of requests about a huge file never leaves a request about another file queued.
WORKERS = 16

Published = dict[str, list[lsp.Diagnostic]]  # uri -> the diagnostics published for it
SetCheck = tuple[Analysis | None, Published]  # a check of a set (None: no set left to check)

_ANSWERED = object()  # a message already dealt with while it was being decoded


class AgpProtocol(LanguageServerProtocol):
    """pygls' protocol, except for a message whose params do not fit its LSP type.

    pygls drops such a message with a traceback, and a client waits forever for the answer to a
    request (a completion `context` without `triggerKind`). Here a request gets an InvalidParams
    error naming the bad field, and either kind is logged in one line.
    """

    def structure_message(self, data: dict[str, Any]) -> Any:
        method = data.get("method") if "jsonrpc" in data and "error" not in data else None
        message_type = self.get_message_type(method) if isinstance(method, str) else None
        if message_type is None:
            return super().structure_message(data)
        try:
            return self._converter.structure(data, message_type)
        except Exception as exc:  # noqa: BLE001 - any malformed message must get its answer
            problems = transform_error(exc) if isinstance(exc, ClassValidationError) else [str(exc)]
            reason = "; ".join(_json_names(p) for p in problems)
            logger.warning("%s: invalid params: %s", method, reason)
            if "id" in data:
                self._send_response(data["id"], error=JsonRpcInvalidParams(
                    f"invalid params for {method}: {reason}").to_response_error())
            return _ANSWERED

    def handle_message(self, message: Any) -> None:
        if message is not _ANSWERED:
            super().handle_message(message)


def _json_names(problem: str) -> str:
    """cattrs names fields as Python does; the client knows their JSON names.

    >>> _json_names("required field missing @ $.params.context.trigger_kind")
    'required field missing @ $.params.context.triggerKind'
    """
    what, at, path = problem.rpartition(" @ ")
    return what + at + re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path) if at else problem


@dataclass
class At:
    """A document position resolved against its policy set."""

    analysis: Analysis
    file: ParsedFile
    offset: int
    lines: LineIndex


class AgpServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("agp", __version__, protocol_cls=AgpProtocol,
                         text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.project = Project([])
        self.debounce = 0.05  # seconds; `initializationOptions.debounce` overrides it
        self.workers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="agp-lsp")
        self.pending: dict[object, asyncio.Task[None]] = {}  # set -> its scheduled check
        self.checking: dict[object, asyncio.Future[SetCheck]] = {}  # set -> its check under way
        self.published: dict[str, object] = {}  # uri -> the set that gave it diagnostics
        # set -> its last check and the diagnostics it published (diagnostics.unchanged)
        self.last_check: dict[object, tuple[Analysis, Published]] = {}
        self.must_check: set[object] = set()  # sets with a change that is not only typing
        self.traces = TraceRuns()
        self.trace_runs: dict[Path, asyncio.Future[None]] = {}  # set root -> its replay under way

    def start_project(self) -> None:
        folders = [uri_to_path(f.uri) for f in self.workspace.folders.values()]
        if not folders and self.workspace.root_uri:
            folders = [uri_to_path(self.workspace.root_uri)]
        self.project = Project(folders)

    @property
    def encoding(self) -> str:
        return str(self.workspace.position_encoding or "utf-16")

    def open_docs(self) -> dict[str, str]:
        # A copy first: the loop thread adds and removes documents while a worker reads them.
        return {uri: doc.source for uri, doc in dict(self.workspace.text_documents).items()}

    def versions(self) -> dict[str, int | None]:
        return {uri: doc.version for uri, doc in dict(self.workspace.text_documents).items()}

    def analysis(self, uri: str, wait: bool = False) -> Analysis:
        """The set of `uri` for answering a request: quick, even beside a huge file, unless
        `wait` (see `Project.analyze`). The set's last check when nothing changed since."""
        docs = self.open_docs()
        return self.checked(uri, docs) or self.project.analyze(uri, docs, wait=wait)

    def checked(self, uri: str, docs: dict[str, str]) -> Analysis | None:
        """The analysis of the set's last check, if analysing the set now would read exactly
        what it read: no check of the set is due or under way (every change schedules one: a
        keystroke, a file opened, saved, closed or changed on disk), and every open document of
        the set has the text it read. Then a request (semantic tokens, symbols, definition...)
        answers from it without going through the set's files again. Else None."""
        key = self.project.key(uri, docs)
        last = self.last_check.get(key)
        if last is None or key in self.must_check or key in self.pending or key in self.checking:
            return None
        analysis = last[0]
        if any(u in docs and docs[u] != f.source.text for u, f in analysis.files.items()):
            return None  # edited inside a comment only (diagnostics.unchanged): not checked
        return analysis

    def lines(self, text: str) -> LineIndex:
        return line_index(text, self.encoding)

    def at(self, uri: str, position: lsp.Position | None = None, wait: bool = False) -> At | None:
        analysis = self.analysis(uri, wait)
        file = analysis.file(uri)
        if file is None:
            return None
        lines = self.lines(file.source.text)
        offset = lines.offset(position) if position is not None else 0
        return At(analysis, file, offset, lines)

    def current(self, uri: str, position: lsp.Position) -> tuple[Current, int] | None:
        """The document for completion and hover, and the cursor's offset in its current text:
        read against the set's last finished analysis, never waiting for a check (see
        `current.py`). Only before the set's first analysis is one made here."""
        docs = self.open_docs()
        analysis = self.project.latest(uri, docs)
        file = analysis.file(uri) if analysis is not None else None
        if analysis is None or file is None:
            analysis = self.analysis(uri)
            file = analysis.file(uri)
            if file is None:
                return None
        text = docs.get(uri, file.source.text)
        cur = current(analysis, file, text, self.lines(text))
        return cur, cur.lines.offset(position)

    def work(self, fn: Callable[..., R], *args: Any) -> asyncio.Future[R]:
        """`fn(*args)` on a worker thread, awaited on the loop."""
        return asyncio.get_running_loop().run_in_executor(self.workers, fn, *args)

    def range(self, span: Span) -> lsp.Range:
        return self.lines(span.source.text).range(span.start, span.end)

    def location(self, analysis: Analysis, span: Span) -> lsp.Location:
        return lsp.Location(uri=analysis.uri_of(span.source), range=self.range(span))


def off_loop(handler: Callable[[AgpServer, P], R]) -> Callable[[AgpServer, P],
                                                                 Coroutine[None, None, R]]:
    """A request handler run on a worker thread; the loop awaits its answer."""

    @functools.wraps(handler)
    async def run(ls: AgpServer, params: P) -> R:
        return await ls.work(handler, ls, params)

    return run

"""`agp lsp`: the language server. Wiring only: each feature lives in its own module."""

from __future__ import annotations

import gc
import logging
import os
import sys

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from agp.lsp import (
    code_actions,
    code_lens,
    completion,
    diagnostics,
    folding,
    formatting,
    hover,
    navigation,
    rename,
    semantic_tokens,
    symbols,
)
from agp.lsp.context import AgpServer, off_loop
from agp.source import Source
from agp.syntax import parse


def build() -> AgpServer:
    ls = AgpServer()

    @ls.feature(lsp.INITIALIZE)
    def initialize(params: lsp.InitializeParams) -> None:
        options = params.initialization_options or {}
        if isinstance(options, dict) and isinstance(options.get("debounce"), (int, float)):
            ls.debounce = max(0.0, float(options["debounce"]) / 1000)  # milliseconds

    @ls.feature(lsp.INITIALIZED)
    async def initialized(params: lsp.InitializedParams) -> None:
        ls.start_project()
        await diagnostics.watch_files(ls)

    @ls.feature(lsp.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def folders_changed(params: lsp.DidChangeWorkspaceFoldersParams) -> None:
        ls.start_project()

    # Notifications only schedule work: they stay on the loop.
    ls.feature(lsp.TEXT_DOCUMENT_DID_OPEN)(diagnostics.did_open)
    ls.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)(diagnostics.did_change)
    ls.feature(lsp.TEXT_DOCUMENT_DID_SAVE)(diagnostics.did_save)
    ls.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)(diagnostics.did_close)
    ls.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)(diagnostics.did_change_watched_files)
    # Requests parse and check: they run on worker threads (`off_loop`).
    ls.feature(lsp.TEXT_DOCUMENT_HOVER)(off_loop(hover.hover))
    ls.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(
        trigger_characters=completion.TRIGGERS))(off_loop(completion.completion))
    ls.feature(lsp.TEXT_DOCUMENT_DEFINITION)(off_loop(navigation.definition))
    ls.feature(lsp.TEXT_DOCUMENT_REFERENCES)(off_loop(navigation.references))
    ls.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)(off_loop(rename.prepare_rename))
    ls.feature(lsp.TEXT_DOCUMENT_RENAME)(off_loop(rename.rename))
    ls.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)(off_loop(symbols.document_symbol))
    ls.feature(lsp.WORKSPACE_SYMBOL)(off_loop(symbols.workspace_symbol))
    ls.feature(lsp.TEXT_DOCUMENT_FOLDING_RANGE)(off_loop(folding.folding_range))
    ls.feature(lsp.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL,
               semantic_tokens.LEGEND)(off_loop(semantic_tokens.semantic_tokens))
    ls.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(
        code_action_kinds=[lsp.CodeActionKind.QuickFix]))(off_loop(code_actions.code_action))
    ls.feature(lsp.TEXT_DOCUMENT_CODE_LENS)(code_lens.code_lens)  # awaits its own worker
    ls.command(code_lens.RUN_TESTS)(code_lens.run_tests)
    ls.feature(lsp.TEXT_DOCUMENT_FORMATTING)(off_loop(formatting.formatting))
    return ls


class _OneLine(logging.Formatter):
    """One line per record on stderr. An error the client is answered with (a refused rename,
    invalid params) is not a crash of the server: a warning, without traceback. A defect keeps
    its traceback, for the bug report."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and isinstance(record.exc_info[1], JsonRpcException):
            exc = record.exc_info[1]
            record = logging.makeLogRecord({
                **record.__dict__, "exc_info": None, "exc_text": None, "args": (),
                "msg": f"{record.getMessage()}: {exc}",
                "levelno": logging.WARNING, "levelname": "WARNING"})
        return super().format(record)


# Python's cyclic garbage collector, tuned for a server that holds large parses. A full
# collection walks every object alive and holds the interpreter meanwhile: with the default
# thresholds, parsing a megabyte of broken rules set off full collections of 250 ms each (800 ms
# under load), and a hover on another file waited behind them. Nearly everything the server
# allocates is freed by reference counting; the few cycles an analysis leaves (a few hundred
# objects) die young and the young collections find them. So: a young generation of 50,000
# objects (collected in 30 ms at most), and a full collection only once 10 million more objects
# were made than freed (and the heap grew by a quarter, as always). `bench/lsp.py` measures the
# hovers beside such a file.
GC_THRESHOLDS = (50_000, 20, 10)
SWITCH_INTERVAL = 0.001  # seconds; see tune_for_latency


def tune_for_latency() -> None:
    """Build the parser's tables, freeze what start-up made (never garbage: no collection walks
    it again), make collections rare (see GC_THRESHOLDS), and hand the interpreter between
    threads every millisecond instead of every 5: a request waits that long at most each time
    it needs the interpreter back from a thread that is parsing a huge file (hovers beside a
    1 MB garbage file: at most 65-90 ms instead of 120-130 ms, the check of that file a little
    slower)."""
    parse(Source("", "dataclass warm\n"))
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL)


def main() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("agp lsp: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    server = build()
    tune_for_latency()
    server.start_io()
    # The client said `exit`. A check may still be running on a worker thread (a huge file): its
    # result has no one to go to, and waiting for it would keep the process alive for seconds.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # already closed by pygls on `exit`
            pass
    os._exit(0)

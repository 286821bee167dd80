"""Diagnostics as you type: the checker's diagnostics, converted, published per file.

A change schedules a check of its policy set after a short pause (`AgpServer.debounce`); a newer
change to the same set cancels the pending one, so a burst of keystrokes costs one check. Every
file of the set gets its list, empty ones included, which clears what an earlier check reported.
"""

from __future__ import annotations

import asyncio

from lsprotocol import types as lsp

from agp.diagnostics import Diagnostic, Severity
from agp.lsp.context import AgpServer
from agp.lsp.project import Analysis


def convert(ls: AgpServer, analysis: Analysis, d: Diagnostic) -> lsp.Diagnostic:
    related = [lsp.DiagnosticRelatedInformation(ls.location(analysis, r.span), r.message)
               for r in d.related]
    if d.hint:
        related.append(lsp.DiagnosticRelatedInformation(ls.location(analysis, d.span),
                                                        f"help: {d.hint}"))
    return lsp.Diagnostic(
        range=ls.range(d.span),
        message=d.message,
        severity=(lsp.DiagnosticSeverity.Error if d.severity is Severity.ERROR
                  else lsp.DiagnosticSeverity.Warning),
        code=d.code,
        source="agp",
        related_information=related or None,
        data={"hint": d.hint} if d.hint else None,
    )


def publish(ls: AgpServer, uri: str) -> None:
    analysis = ls.analysis(uri)
    key = analysis.root or uri
    versions = {u: doc.version for u, doc in ls.workspace.text_documents.items()}
    by_uri = analysis.by_uri()
    for stale in ls.published.get(key, set()) - by_uri.keys():
        by_uri[stale] = []
    for u, diagnostics in by_uri.items():
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=u, version=versions.get(u),
            diagnostics=[convert(ls, analysis, d) for d in diagnostics]))
    ls.published[key] = {u for u, ds in by_uri.items() if ds}


def schedule(ls: AgpServer, uri: str) -> None:
    key = ls.project.root_of(uri) or uri
    task = ls.pending.pop(key, None)
    if task is not None:
        task.cancel()

    async def later():
        await asyncio.sleep(ls.debounce)
        ls.pending.pop(key, None)
        publish(ls, uri)

    ls.pending[key] = asyncio.ensure_future(later())


def did_open(ls: AgpServer, params: lsp.DidOpenTextDocumentParams) -> None:
    schedule(ls, params.text_document.uri)


def did_change(ls: AgpServer, params: lsp.DidChangeTextDocumentParams) -> None:
    schedule(ls, params.text_document.uri)


def did_save(ls: AgpServer, params: lsp.DidSaveTextDocumentParams) -> None:
    schedule(ls, params.text_document.uri)


def did_close(ls: AgpServer, params: lsp.DidCloseTextDocumentParams) -> None:
    # The file stays in its set (as saved on disk); a loose file leaves with its diagnostics.
    uri = params.text_document.uri
    if ls.project.root_of(uri) is None:
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        ls.published.pop(uri, None)
    else:
        schedule(ls, uri)


def did_change_watched_files(ls: AgpServer, params: lsp.DidChangeWatchedFilesParams) -> None:
    for change in params.changes:
        if change.uri.endswith(".agp"):
            schedule(ls, change.uri)

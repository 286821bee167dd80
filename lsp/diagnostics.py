"""Diagnostics as you type: the checker's diagnostics, converted, published per file.

A change schedules a check of its policy set after a short pause (`AgpServer.debounce`); a newer
change to the same set cancels the pending one, so a burst of keystrokes costs one check. The
check runs on a worker thread, one at a time per set (a change during a check waits for it, then
checks again), and its result is published from the loop. Every file of the set gets its list,
empty ones included, which clears what an earlier check reported.

A file with thousands of problems (garbage, a binary saved as `.agp`) gets its first
`MAX_PER_FILE` and one note saying how many more there are: the editor stays usable and `agp check`
lists them all.
"""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types as lsp

from agp.diagnostics import Diagnostic, Severity
from agp.lsp import analysis as hints
from agp.lsp.context import AgpServer, Published, SetCheck
from agp.lsp.current import inside_a_comment
from agp.lsp.project import Analysis

logger = logging.getLogger("agp.lsp")
MAX_PER_FILE = 1000
WATCHED = "agp-policy-files"  # the id of the file-watcher registration


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


def _bounded(ls: AgpServer, analysis: Analysis, found: list[Diagnostic]) -> list[lsp.Diagnostic]:
    found = sorted(found, key=Diagnostic.sort_key)
    out = [convert(ls, analysis, d) for d in found[:MAX_PER_FILE]]
    if len(found) > MAX_PER_FILE:
        out.append(lsp.Diagnostic(
            range=ls.range(found[MAX_PER_FILE].span), source="agp",
            severity=lsp.DiagnosticSeverity.Information,
            message=f"{len(found) - MAX_PER_FILE} more problems in this file are not shown; "
                    "`agp check` lists them all"))
    return out


def check_set(ls: AgpServer, uri: str, docs: dict[str, str]) -> SetCheck:
    """On a worker thread: check the set of `uri` and convert its diagnostics, per file."""
    if uri not in docs and ls.project.root_of(uri, docs) is None:
        return None, {}  # a file that was a set by itself and is closed (or gone): nothing is left
    analysis = ls.project.analyze(uri, docs, wait=True)
    return analysis, {u: _bounded(ls, analysis, found) for u, found in analysis.by_uri().items()}


def unchanged(ls: AgpServer, key: object, docs: dict[str, str]) -> Published | None:
    """The diagnostics of the set's last check when checking `docs` would give exactly those
    again, else None. So it is when, since that check, the documents were only edited inside
    comments (`current.inside_a_comment`), every file of the set is an open document (a file
    on disk may have changed unseen), and no file was opened, closed, saved or reported changed
    on disk (`AgpServer.must_check`)."""
    last = ls.last_check.get(key)
    if last is None or key in ls.must_check:
        return None
    analysis, by_uri = last
    if not all(u in docs for u in analysis.uris.values()):
        return None
    if not all(inside_a_comment(f, docs[u]) for u, f in analysis.files.items()):
        return None
    return by_uri


def publish(ls: AgpServer, key: object, by_uri: dict[str, list[lsp.Diagnostic]],
            versions: dict[str, int | None]) -> None:
    """On the loop: send every file's list, and clear the files that left the set."""
    for uri, owner in list(ls.published.items()):
        if owner == key and uri not in by_uri:
            by_uri[uri] = []
    for uri, diagnostics in by_uri.items():
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=uri, version=versions.get(uri), diagnostics=diagnostics))
        if diagnostics:
            ls.published[uri] = key
        else:
            ls.published.pop(uri, None)


def clear(ls: AgpServer, uri: str) -> None:
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
    ls.published.pop(uri, None)


def schedule(ls: AgpServer, uri: str, typed: bool = False) -> None:
    """Check the set of `uri` soon; `typed` when only the text of an open document changed."""
    key = ls.project.key(uri, ls.open_docs())
    if not typed:
        ls.must_check.add(key)
    hints.cancel(ls, key)  # the analysis of the set's previous text is out of date
    task = ls.pending.pop(key, None)
    if task is not None:
        task.cancel()

    async def later() -> None:
        await asyncio.sleep(ls.debounce)
        while (running := ls.checking.get(key)) is not None and not running.done():
            await asyncio.wait([running])  # one check of a set at a time
        ls.pending.pop(key, None)  # from here on, a newer change waits for this check
        docs, versions = ls.open_docs(), ls.versions()  # the texts and versions checked
        same = unchanged(ls, key, docs)
        if same is not None:  # only comments were edited: the same list, for the new versions
            publish(ls, key, dict(same), versions)
            hints.start(ls, key, uri, docs, same, versions)
            return
        ls.must_check.discard(key)
        job = ls.work(check_set, ls, uri, docs)
        ls.checking[key] = job
        try:
            analysis, by_uri = await job
            # Before the check stops counting as under way: a request then answers from it
            # (`AgpServer.checked`), never from the one before.
            if analysis is None:
                ls.last_check.pop(key, None)
            else:
                ls.last_check[key] = (analysis, dict(by_uri))
        except Exception:  # a defect of the checker: keep serving, say where it broke
            logger.exception("checking %s failed", uri)
            ls.must_check.add(key)
            return
        finally:
            if ls.checking.get(key) is job:
                del ls.checking[key]
        publish(ls, key, by_uri, versions)
        hints.start(ls, key, uri, docs, by_uri, versions)  # off the typing path, after it

    ls.pending[key] = asyncio.ensure_future(later())


def did_open(ls: AgpServer, params: lsp.DidOpenTextDocumentParams) -> None:
    schedule(ls, params.text_document.uri)


def did_change(ls: AgpServer, params: lsp.DidChangeTextDocumentParams) -> None:
    schedule(ls, params.text_document.uri, typed=True)


def did_save(ls: AgpServer, params: lsp.DidSaveTextDocumentParams) -> None:
    schedule(ls, params.text_document.uri)


def did_close(ls: AgpServer, params: lsp.DidCloseTextDocumentParams) -> None:
    # The file stays in its set (as saved on disk); a file that was a set by itself leaves, and
    # its diagnostics with it.
    uri = params.text_document.uri
    if ls.project.root_of(uri, ls.open_docs()) is None:
        ls.project.forget(uri)
    schedule(ls, uri)  # after any check still pending for it, which would publish again


async def watch_files(ls: AgpServer) -> None:
    """Ask the client to report `.agp` files changed on disk, when it can (dynamic registration).

    Without this, a file changed by `git checkout` or another program is seen at the next edit.
    """
    caps = ls.client_capabilities.workspace
    watched = caps.did_change_watched_files if caps else None
    if not (watched and watched.dynamic_registration):
        return
    try:
        await ls.client_register_capability_async(lsp.RegistrationParams(registrations=[
            lsp.Registration(id=WATCHED, method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                             register_options=lsp.DidChangeWatchedFilesRegistrationOptions(
                                 watchers=[lsp.FileSystemWatcher(glob_pattern="**/*.agp")]))]))
    except Exception as exc:  # the client refused: the server still works, edits still count
        logger.warning("the client did not register the file watcher: %s", exc)


def did_change_watched_files(ls: AgpServer, params: lsp.DidChangeWatchedFilesParams) -> None:
    docs = ls.open_docs()
    for change in params.changes:
        if not change.uri.endswith(".agp"):
            continue
        if change.type == lsp.FileChangeType.Deleted and change.uri not in docs:
            clear(ls, change.uri)
        schedule(ls, change.uri)
    # A file added or removed can move the line between two sets: check again every set that
    # shows a problem (the duplicates of two sets seen as one, say).
    for uri in list(ls.published):
        schedule(ls, uri)

"""`agp analyze`'s findings in the editor, as hints at the rule names (docs/analyze.md).

The analysis asks the SMT solver many questions: it never runs on the typing path. Once a check
of a set has published its diagnostics (agp.lsp.diagnostics), found no error, and the set has then
stayed unchanged for `QUIET` seconds (the author paused), the analysis of the set runs on a
worker thread, with `PER_CHECK` seconds per solver check and `BUDGET` seconds
in all. Its findings are published as Hint diagnostics with the checker's diagnostics of each
file (a publication replaces a file's whole list). A newer change of the set stops it before its
next solver check, and its result is dropped. A run that the budget cut short publishes what it
found: each finding is a proof on its own. A check that runs out of time claims nothing, and
gives no hint (`agp analyze` reports it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field

from lsprotocol import types as lsp

from agp.analyze import analyze
from agp.diagnostics import Severity
from agp.lsp.context import AgpServer

logger = logging.getLogger("agp.lsp")
BUDGET = 10.0  # seconds for one analysis of a set
PER_CHECK = 1.0  # seconds for one solver check
# Seconds without a change before an analysis starts: while the author types, the checks of each
# keystroke have the processor to themselves (a solver run in between made them 2-3x slower).
QUIET = 1.5
SOURCE = "agp analyze"


@dataclass
class _State:
    """Per server: the analysis under way for each set, and the files that show hints."""

    running: dict[object, threading.Event] = field(default_factory=dict)  # set -> its stop
    hinted: dict[str, object] = field(default_factory=dict)  # uri -> the set of its hints


_states: weakref.WeakKeyDictionary[AgpServer, _State] = weakref.WeakKeyDictionary()


def _state(ls: AgpServer) -> _State:
    return _states.setdefault(ls, _State())


def cancel(ls: AgpServer, key: object) -> None:
    """A change of the set: the analysis under way for it is out of date."""
    stop = _state(ls).running.pop(key, None)
    if stop is not None:
        stop.set()


def start(ls: AgpServer, key: object, uri: str, docs: dict[str, str],
          checked: dict[str, list[lsp.Diagnostic]], versions: dict[str, int | None]) -> None:
    """After the checker's diagnostics of the set (`checked`, per file) were published: analyze
    the set off the loop, then publish its hints beside them."""
    if not checked:  # a file that left (closed, deleted): nothing to analyze
        return
    if any(d.severity == lsp.DiagnosticSeverity.Error for ds in checked.values() for d in ds):
        _publish(ls, key, checked, {}, versions)  # a set with errors has no policy to analyze
        return
    cancel(ls, key)
    stop = threading.Event()
    _state(ls).running[key] = stop

    async def run() -> None:
        try:
            await asyncio.sleep(QUIET)
            if stop.is_set():  # the set changed during the pause: its next check starts again
                return
            hints = await ls.work(findings, ls, uri, docs, stop)
        except Exception:  # a defect of the analysis: the editor keeps working without hints
            logger.exception("analyzing %s failed", uri)
            return
        finally:
            if _state(ls).running.get(key) is stop:
                del _state(ls).running[key]
        if not stop.is_set():
            _publish(ls, key, checked, hints, versions)

    asyncio.ensure_future(run())


def findings(ls: AgpServer, uri: str, docs: dict[str, str],
             stop: threading.Event) -> dict[str, list[lsp.Diagnostic]]:
    """On a worker thread: the set's findings as hints, per file."""
    from agp.lsp.diagnostics import convert

    analysis = ls.project.analyze(uri, docs, wait=True)
    policy = analysis.policy
    if policy is None or any(d.severity is Severity.ERROR for d in analysis.loaded.diagnostics):
        return {}
    deadline = time.monotonic() + BUDGET
    report = analyze(policy, timeout=PER_CHECK,
                     stop=lambda: stop.is_set() or time.monotonic() > deadline)
    out: dict[str, list[lsp.Diagnostic]] = {}
    for d in report.diagnostics:
        if d.code == "analysis-timeout":
            continue
        hint = convert(ls, analysis, d)
        hint.severity, hint.source = lsp.DiagnosticSeverity.Hint, SOURCE
        out.setdefault(analysis.uri_of(d.span.source), []).append(hint)
    return out


def _publish(ls: AgpServer, key: object, checked: dict[str, list[lsp.Diagnostic]],
             hints: dict[str, list[lsp.Diagnostic]], versions: dict[str, int | None]) -> None:
    """Each file with hints, or that had some, gets its checker diagnostics and its hints."""
    hinted = _state(ls).hinted
    stale = {u for u, owner in hinted.items() if owner == key and u not in hints}
    for uri in sorted(hints.keys() | stale):
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=uri, version=versions.get(uri),
            diagnostics=[*checked.get(uri, []), *hints.get(uri, [])]))
        if hints.get(uri):
            hinted[uri] = key
            ls.published[uri] = key
        else:
            hinted.pop(uri, None)

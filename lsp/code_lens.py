"""Code lenses: over each rule, how many trace expectations of its policy set it decided (and how
many of those fail); over the file, `▶ run agp test`, which replays the set's traces and shows the
`N passed, M failed` line that `agp test -p SET SET` prints.

Traces are replayed in the server's process, on a worker thread, never inside the request (see
`traces.py` for what is kept). A lens request answers at once with what is known; if some trace
has not been replayed for the current policy, it says so in the lens and starts a run, and when
the run finishes the server asks the client to request the lenses again
(`workspace/codeLens/refresh`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types as lsp

from agp.lsp.context import AgpServer
from agp.lsp.traces import Tally
from agp.policy import Policy
from agp.syntax import ast

RUN_TESTS = "agp.test"
TOP = lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=0))


@dataclass(frozen=True)
class Lenses:
    """A lens answer, and the run it needs (the set's root, its policy) if a trace is missing."""

    lenses: list[lsp.CodeLens]
    run: tuple[Path, Policy] | None = None


async def code_lens(ls: AgpServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
    answer = await ls.work(lenses, ls, params.text_document.uri)
    if answer.run is not None:
        start(ls, *answer.run)
    return answer.lenses


def lenses(ls: AgpServer, uri: str) -> Lenses:
    """On a worker thread: the lenses of a file, from the tallies kept."""
    at = ls.at(uri)
    if at is None:
        return Lenses([])
    top = [lsp.CodeLens(range=TOP, command=lsp.Command(
        title="▶ run agp test", command=RUN_TESTS, arguments=[uri]))]
    root, policy = at.analysis.root, at.analysis.policy
    if policy is None or root is None:
        return Lenses(top)
    known = ls.traces.known(policy, root)
    tally, waiting = known.tally, len(known.missing)
    rules = [item for item in at.file.items if isinstance(item, ast.Rule)]
    return Lenses(top + [_lens(ls, uri, rule, tally, waiting) for rule in rules],
                  (root, policy) if waiting else None)


def _lens(ls: AgpServer, uri: str, rule: ast.Rule, tally: Tally, waiting: int) -> lsp.CodeLens:
    n, failed = tally.rules.get(rule.name.text, (0, 0))
    title = f"decided {n} trace expectation{'s' if n != 1 else ''}"
    if failed:
        title += f" ({failed} failing)"
    if waiting:
        title += f" so far: replaying {waiting} trace{'s' if waiting != 1 else ''}"
    return lsp.CodeLens(range=ls.range(rule.name.span), command=lsp.Command(
        title=title, command=RUN_TESTS, arguments=[uri]))


def start(ls: AgpServer, root: Path, policy: Policy) -> asyncio.Future[None]:
    """On the loop: replay the set's missing traces for `policy` on a worker thread (unless a run
    for it is under way), then have the client ask for the lenses again."""
    running = ls.trace_runs.get(root)
    if running is not None and not running.done() and ls.traces.latest.get(root) == policy.hash:
        return running
    ls.traces.latest[root] = policy.hash

    async def run() -> None:
        await ls.work(ls.traces.replay, policy, root,
                      lambda: ls.traces.latest.get(root) != policy.hash)
        _refresh(ls)

    task = ls.trace_runs[root] = asyncio.ensure_future(run())
    return task


async def run_tests(ls: AgpServer, uri: str | None = None) -> str:
    """Replay every trace of the set of `uri` (its `*.jsonl` files) for its current text; show
    and return the summary line of `agp test`."""
    summary, ok = await ls.work(_run_tests, ls, uri)
    kind = lsp.MessageType.Info if ok else lsp.MessageType.Warning
    ls.window_show_message(lsp.ShowMessageParams(type=kind, message=f"agp test: {summary}"))
    _refresh(ls)  # the lenses can now show every trace
    return summary


def _refresh(ls: AgpServer) -> None:
    workspace = ls.client_capabilities.workspace
    if workspace and workspace.code_lens and workspace.code_lens.refresh_support:
        ls.workspace_code_lens_refresh(None)


def _run_tests(ls: AgpServer, uri: str | None) -> tuple[str, bool]:
    uri = uri or next(iter(ls.project.sets()), None)
    analysis = ls.analysis(uri, wait=True) if uri is not None else None
    if analysis is None or analysis.policy is None or analysis.root is None:
        return "the policy set does not load (see its diagnostics): nothing was tested", False
    tally = ls.traces.replay(analysis.policy, analysis.root).tally
    return f"{tally.passed} passed, {tally.failed} failed", tally.failed == 0

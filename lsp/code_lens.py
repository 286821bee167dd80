"""Code lenses: over each rule, how many trace expectations of the workspace it decided (replayed
with `agp.replay_trace`); over the file, a lens that runs `agp test` on the policy set."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from lsprotocol import types as lsp

import agp
from agp.lsp.context import AgpServer
from agp.syntax import ast

RUN_TESTS = "agp.test"
_cache: dict[tuple, dict[str, tuple[int, int]]] = {}


def _trace_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.jsonl") if p.is_file())


def decided(policy, root: Path) -> dict[str, tuple[int, int]]:
    """rule name -> (expectations it decided, how many of them failed), over every trace."""
    traces = _trace_files(root)
    key = (policy.hash, tuple((str(p), p.stat().st_mtime) for p in traces))
    if key in _cache:
        return _cache[key]
    engine = agp.Engine(policy)
    counts: dict[str, tuple[int, int]] = {}
    for trace in traces:
        for outcome in agp.replay_trace(engine, trace):
            if outcome.expect is None or outcome.decision is None:
                continue
            for rule in set(outcome.decision.rules):
                n, failed = counts.get(rule, (0, 0))
                counts[rule] = (n + 1, failed + (not outcome.passed))
    _cache.clear()
    _cache[key] = counts
    return counts


def code_lens(ls: AgpServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
    at = ls.at(params.text_document.uri)
    if at is None:
        return []
    root = at.analysis.root
    target = str(root) if root is not None else str(Path(at.file.source.name))
    top = lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=0))
    lenses = [lsp.CodeLens(range=top, command=lsp.Command(
        title="▶ run agp test", command=RUN_TESTS, arguments=[target]))]
    if at.analysis.policy is None or root is None:
        return lenses
    counts = decided(at.analysis.policy, root)
    for item in at.file.items:
        if isinstance(item, ast.Rule):
            n, failed = counts.get(item.name.text, (0, 0))
            title = f"decided {n} trace expectation{'s' if n != 1 else ''}"
            if failed:
                title += f" ({failed} failing)"
            lenses.append(lsp.CodeLens(range=ls.range(item.name.span), command=lsp.Command(
                title=title, command=RUN_TESTS, arguments=[target])))
    return lenses


async def run_tests(ls: AgpServer, target: str | None = None) -> str:
    """Run `agp test -p SET SET` (traces are the set's `*.jsonl` files); show the summary line."""
    if target is None:
        target = str(ls.project.folders[0]) if ls.project.folders else "."
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from agp.cli import main; main()", "test", "-p", target, target,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    lines = [ln for ln in out.decode("utf-8", "replace").splitlines() if ln.strip()]
    summary = next((ln for ln in reversed(lines) if " passed, " in ln), lines[-1] if lines else "")
    kind = lsp.MessageType.Info if proc.returncode == 0 else lsp.MessageType.Warning
    ls.window_show_message(lsp.ShowMessageParams(type=kind, message=f"agp test: {summary}"))
    return summary

"""Code lenses: trace expectations per rule, replayed in the server off the request, kept per
(policy, trace file), and announced with `workspace/codeLens/refresh` when a run finishes.

Each wait is for a real message of the server (the refresh request, an answer), never a sleep.
"""

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from lsprotocol import types as lsp
from support import TIMEOUT, opened

import agp
from agp.cli import main

pytestmark = pytest.mark.asyncio

RULES = ("refund_small", "refund_large", "lookups", "deep_chains")
# A new trace: one lookup in a support ticket, which `lookups` decides.
MORE = [
    {"ts": "2026-11-28T12:00:00Z", "event": "task.start",
     "task": {"id": "t-99", "kind": "support_ticket", "params": {"customer": "c-1"}},
     "agent": "spiffe://acme.com/agents/support-bot",
     "chain": [{"principal": "user:dana", "kind": "human"}]},
    {"ts": "2026-11-28T12:00:05Z", "event": "call", "task": "t-99",
     "agent": "spiffe://acme.com/agents/support-bot", "tool": "crm.lookup",
     "args": {"customer": "c-1"}, "target": {"host": "crm.internal", "external": False},
     "expect": "allow"},
]


def _expected(workspace: Path) -> dict[str, int]:
    """rule -> the expectations it decided, replaying every trace as `agp test` does."""
    engine = agp.load(workspace)
    counts: dict[str, int] = {}
    for trace in sorted(workspace.rglob("*.jsonl")):
        for o in agp.replay_trace(engine, trace):
            if o.expect is not None and o.decision is not None:
                for rule in set(o.decision.rules):
                    counts[rule] = counts.get(rule, 0) + 1
    return counts


async def _titles(client, uri: str, text: str) -> dict[str, str]:
    lenses = await client.text_document_code_lens_async(
        lsp.CodeLensParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    lines = text.splitlines()
    return {lines[ln.range.start.line].split()[1]: ln.command.title
            for ln in lenses if ln.range.start.line > 0}


async def _refreshed(client) -> None:
    """Wait for the server's `workspace/codeLens/refresh`: a replay has finished."""
    await asyncio.wait_for(client.lens_refreshes.get(), TIMEOUT)


def _counted(titles: dict[str, str], expected: dict[str, int]) -> None:
    for rule in RULES:
        n = expected.get(rule, 0)
        assert titles[rule].startswith(f"decided {n} trace expectation"), (rule, titles[rule])
        assert "replaying" not in titles[rule], titles[rule]


async def test_lenses_answer_at_once_and_refresh_when_the_traces_are_replayed(client, workspace):
    path = workspace / "support.agp"
    text = path.read_text(encoding="utf-8")
    uri = await opened(client, path)
    traces = len(list(workspace.rglob("*.jsonl")))
    # Nothing is replayed inside the request: the first answer says what is still running.
    first = await _titles(client, uri, text)
    waiting = f"decided 0 trace expectations so far: replaying {traces} traces"
    assert first["refund_small"] == waiting
    await _refreshed(client)
    expected = _expected(workspace)
    assert expected.get("refund_small", 0) > 0
    _counted(await _titles(client, uri, text), expected)

    # A new trace: only it is replayed; what the other traces gave is kept and shown meanwhile.
    more = workspace / "traces" / "more.trace.jsonl"
    more.write_text("".join(json.dumps(line) + "\n" for line in MORE), encoding="utf-8")
    partial = await _titles(client, uri, text)
    n = expected["lookups"]
    assert partial["lookups"] == f"decided {n} trace expectations so far: replaying 1 trace"
    await _refreshed(client)
    updated = _expected(workspace)
    assert updated["lookups"] == n + 1
    _counted(await _titles(client, uri, text), updated)


async def test_run_agp_test_lens_gives_agp_tests_summary(client, workspace):
    uri = await opened(client, workspace / "support.agp")
    lenses = await client.text_document_code_lens_async(
        lsp.CodeLensParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    [top] = [ln for ln in lenses if ln.range.start.line == 0]
    assert top.command.command == "agp.test" and top.command.title == "▶ run agp test"
    summary = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
        command=top.command.command, arguments=top.command.arguments))
    cli = CliRunner().invoke(main, ["test", "-p", str(workspace), str(workspace)])
    assert summary == cli.output.strip().splitlines()[-1]
    assert summary.endswith(" failed") and " passed, " in summary

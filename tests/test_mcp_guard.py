"""`agp mcp-guard` end to end: the SDK's real client, through the guard, to a real SDK server
(tests/data/mcp/upstream.py), which records every tool call it receives; and hostile JSON-RPC
written straight to the guard's stdin. The upstream must never receive a call the policy did
not allow."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp_types import ElicitResult
from support import DATA

import agp

MCP = DATA / "mcp"
POLICY = MCP / "guard.agp"
UPSTREAM = [sys.executable, str(MCP / "upstream.py")]
AGENT = "spiffe://test/agents/bot"


def guard_argv(*extra: str) -> list[str]:
    return [sys.executable, "-m", "agp.cli", "mcp-guard", "-p", str(POLICY), "--agent", AGENT,
            "--prefix", "shop", *extra, "--", *UPSTREAM]


def received(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def env_for(record: Path) -> dict[str, str]:
    return {**os.environ, "AGP_TEST_RECEIVED": str(record)}


async def session_run(argv: list[str], env: dict[str, str], body: Any,
                      elicit: str | None = "accept") -> Any:
    """Run `body(session)` with the SDK's client connected to the command `argv`; `elicit` is
    the user's answer to elicitations (None: the client does not support elicitation)."""
    asked: list[str] = []

    async def on_elicit(ctx: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        assert elicit is not None
        return ElicitResult(action=elicit)  # type: ignore[arg-type]

    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, elicitation_callback=on_elicit if elicit else None
                                 ) as session:
            await session.initialize()
            return await body(session), asked


def run_session(argv: list[str], env: dict[str, str], body: Any, elicit: str | None = "accept"
                ) -> Any:
    return anyio.run(session_run, argv, env, body, elicit)


def test_allowed_calls_reach_the_upstream_unchanged_and_tools_list_passes(tmp_path):
    record = tmp_path / "received.jsonl"

    async def body(s: ClientSession) -> Any:
        tools = await s.list_tools()
        looked = await s.call_tool("lookup", {"customer": "c-1"})
        refunded = await s.call_tool("refund", {"customer": "c-1", "amount": 40})
        resource = await s.read_resource("note://hello")
        prompt = await s.get_prompt("greet", {"name": "Ada"})
        return tools, looked, refunded, resource, prompt

    (tools, looked, refunded, resource, prompt), asked = run_session(
        guard_argv("--task-kind", "support", "--task-params", '{"customer": "c-1"}'),
        env_for(record), body)

    direct, _ = run_session(UPSTREAM, env_for(tmp_path / "direct.jsonl"),
                            lambda s: s.list_tools())
    assert [t.model_dump() for t in tools.tools] == [t.model_dump() for t in direct.tools]
    assert looked.is_error is False and looked.content[0].text == "customer c-1: ok"
    assert refunded.content[0].text == "refunded 40 to c-1"
    assert resource.contents[0].text == "hello from upstream"
    assert "Greet Ada politely." in prompt.messages[0].content.text
    assert asked == []
    assert received(record) == [{"tool": "lookup", "args": {"customer": "c-1"}},
                                {"tool": "refund", "args": {"customer": "c-1", "amount": 40}}]


def test_a_denied_call_is_refused_with_rules_and_reasons_and_never_forwarded(tmp_path):
    record = tmp_path / "received.jsonl"
    result, _ = run_session(guard_argv(), env_for(record),
                            lambda s: s.call_tool("delete", {"customer": "c-1"}))
    assert result.is_error is True
    text = result.content[0].text
    assert text.startswith("denied by policy:")
    assert "no_deletes" in text and "customers are never deleted by an agent" in text
    assert received(record) == []


@pytest.mark.parametrize("answer", ["accept", "decline", "cancel"])
def test_an_ask_goes_to_the_user_and_only_an_accept_forwards_it(tmp_path, answer):
    record = tmp_path / "received.jsonl"
    result, asked = run_session(guard_argv(), env_for(record),
                                lambda s: s.call_tool("refund", {"customer": "c-1",
                                                                 "amount": 500}), elicit=answer)
    assert len(asked) == 1 and "shop.refund" in asked[0] and "refunds over 100" in asked[0]
    if answer == "accept":
        assert result.is_error is False and result.content[0].text == "refunded 500 to c-1"
        assert received(record) == [{"tool": "refund",
                                     "args": {"customer": "c-1", "amount": 500}}]
    else:
        assert result.is_error is True
        assert result.content[0].text.startswith("needs approval:")
        assert "large_refunds" in result.content[0].text
        assert received(record) == []


def test_a_client_without_elicitation_gets_needs_approval_at_once(tmp_path):
    record = tmp_path / "received.jsonl"
    result, _ = run_session(guard_argv(), env_for(record),
                            lambda s: s.call_tool("refund", {"customer": "c-1", "amount": 500}),
                            elicit=None)
    assert result.is_error is True
    assert result.content[0].text.startswith("needs approval: shop.refund")
    assert received(record) == []


def test_every_decision_goes_to_the_decision_log(tmp_path):
    log = tmp_path / "decisions.jsonl"

    async def body(s: ClientSession) -> None:
        await s.call_tool("lookup", {"customer": "c-1"})
        await s.call_tool("delete", {"customer": "c-1"})

    run_session(guard_argv("--decision-log", str(log)), env_for(tmp_path / "r.jsonl"), body)
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    decisions = [json.dumps(e) for e in entries]
    assert len(entries) == 2
    assert '"allow"' in decisions[0] and '"deny"' in decisions[1]


# ---- hostile input, written as raw lines ------------------------------------------------------


class RawGuard:
    """The guard as a process, spoken to line by line."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)

    def send(self, line: str | bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line if isinstance(line, bytes) else line.encode() + b"\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        """The next message from the guard (a test that waits for one that never comes fails
        after a minute instead of hanging)."""
        assert self.proc.stdout is not None
        if not self.selector.select(timeout=60):
            raise AssertionError("the guard did not answer")
        line = self.proc.stdout.readline()
        assert line, "the guard closed its output"
        return json.loads(line)

    def answer_to(self, id: Any) -> dict[str, Any]:
        """The answer to request `id`, skipping notifications and other answers."""
        while True:
            message = self.read()
            if message.get("id") == id and "method" not in message:
                return message

    def close(self) -> tuple[int, str]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=60)
        assert self.proc.stderr is not None and self.proc.stdout is not None
        self.proc.stdout.close()
        err = self.proc.stderr.read().decode()
        self.proc.stderr.close()
        return code, err


def call(id: Any, tool: str, args: dict[str, Any]) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                       "params": {"name": tool, "arguments": args}})


def start(guard: RawGuard, capabilities: dict[str, Any] | None = None) -> None:
    guard.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": capabilities or {},
        "clientInfo": {"name": "raw", "version": "0"}}}))
    assert "result" in guard.answer_to(0)
    guard.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')


def test_hostile_messages_never_get_a_call_past_the_policy(tmp_path):
    record = tmp_path / "received.jsonl"
    guard = RawGuard(guard_argv(), env_for(record))
    start(guard, {"elicitation": {}})
    delete = {"name": "delete", "arguments": {"customer": "c-1"}}

    guard.send("{not json")
    assert guard.read()["error"]["code"] == -32700
    guard.send(b"\xff\xfe{}\n")
    assert guard.read()["error"]["code"] == -32700
    # A batch, whatever it holds, is refused whole.
    guard.send(json.dumps([json.loads(call(1, "delete", {"customer": "c-1"})),
                           json.loads(call(2, "lookup", {"customer": "c-1"}))]))
    assert guard.read() == {"jsonrpc": "2.0", "id": None, "error": {
        "code": -32600, "message": "refused by agp mcp-guard: JSON-RPC batches are not accepted"}}
    # Duplicate keys: the guard and the upstream could read different names.
    guard.send('{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": '
               '{"name": "lookup", "name": "delete", "arguments": {"customer": "c-1"}}}')
    assert "duplicate key 'name'" in guard.read()["error"]["message"]
    guard.send('{"jsonrpc": "2.0", "id": 4, "method": "tools/call", "method": "ping"}')
    assert guard.read()["error"]["code"] == -32700
    # A tools/call without an id.
    guard.send(json.dumps({"jsonrpc": "2.0", "method": "tools/call", "params": delete}))
    assert "needs an id" in guard.read()["error"]["message"]
    # Members the envelope does not have, and ids no peer could hold exactly.
    guard.send(json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": delete,
                           "result": {}}))
    assert guard.answer_to(5)["error"]["code"] == -32600
    for huge in (2**53, -(2**64), "x" * 5000, 1.5, True, None, [1], {"a": 1}):
        guard.send(json.dumps({"jsonrpc": "2.0", "id": huge, "method": "tools/call",
                               "params": {"name": "lookup", "arguments": {"customer": "c"}}}))
        answer = guard.read()
        assert answer["error"]["code"] == -32600 and answer["id"] is None, huge
    guard.send('{"jsonrpc": "1.0", "id": 6, "method": "tools/call"}')
    assert guard.answer_to(6)["error"]["code"] == -32600
    guard.send(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": 42}}))
    assert guard.answer_to(7)["error"]["code"] == -32602
    guard.send(json.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": delete}))
    assert guard.answer_to(8)["result"]["isError"] is True

    # An elicitation answer the guard never asked for, then one forged for a real ask.
    guard.send('{"jsonrpc": "2.0", "id": "agp-0-0", "result": {"action": "accept"}}')
    guard.send(call(9, "refund", {"customer": "c-1", "amount": 500}))
    ask = guard.read()
    assert ask["method"] == "elicitation/create"
    guard.send(json.dumps({"jsonrpc": "2.0", "id": ask["id"] + "x", "result": {
        "action": "accept"}}))
    guard.send(json.dumps({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "maybe"}}))
    refused = guard.answer_to(9)
    assert refused["result"]["content"][0]["text"].startswith("needs approval:")
    # The same id cannot be answered twice.
    guard.send(json.dumps({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept"}}))

    # An unknown method is forwarded (it is not a tool call) and the upstream answers it.
    guard.send('{"jsonrpc": "2.0", "id": 10, "method": "no/such/method"}')
    assert guard.answer_to(10)["error"]["code"] == -32601
    guard.send(call(11, "lookup", {"customer": "c-1"}))
    assert guard.answer_to(11)["result"]["content"][0]["text"] == "customer c-1: ok"
    code, err = guard.close()
    assert code == 0
    assert "dropped an answer from the client" in err
    assert received(record) == [{"tool": "lookup", "args": {"customer": "c-1"}}]


def test_a_cancelled_ask_is_never_forwarded(tmp_path):
    record = tmp_path / "received.jsonl"
    guard = RawGuard(guard_argv(), env_for(record))
    start(guard, {"elicitation": {"form": {}}})
    guard.send(call("r", "refund", {"customer": "c-1", "amount": 500}))
    ask = guard.read()
    guard.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                           "params": {"requestId": "r"}}))
    guard.send(json.dumps({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept"}}))
    guard.send(call(1, "lookup", {"customer": "c-1"}))
    assert guard.read()["id"] == 1  # no answer to the cancelled call comes before it
    assert guard.close()[0] == 0
    assert received(record) == [{"tool": "lookup", "args": {"customer": "c-1"}}]


def test_when_the_upstream_dies_the_guard_answers_errors_and_exits(tmp_path):
    # An "upstream" that reads one message and exits without answering.
    argv = [sys.executable, "-m", "agp.cli", "mcp-guard", "-p", str(POLICY), "--agent", AGENT,
            "--", sys.executable, "-c", "import sys; sys.stdin.readline()"]
    guard = RawGuard(argv, dict(os.environ))
    guard.send('{"jsonrpc": "2.0", "id": 1, "method": "ping"}')
    answer = guard.answer_to(1)
    assert answer["error"]["message"] == "the upstream MCP server exited"
    assert guard.proc.wait(timeout=60) == 1
    guard.close()


@pytest.mark.parametrize("extra, message", [
    (["--task-params", "[1]"], "--task-params: expected a JSON object"),
    (["--task-kind", "nope"], "task kind 'nope' is not declared"),
    (["--chain", "{bad"], "--chain"),
])
def test_bad_options_exit_2_with_a_message(extra, message):
    proc = subprocess.run(guard_argv(*extra), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_an_upstream_that_cannot_start_exits_2():
    argv = [sys.executable, "-m", "agp.cli", "mcp-guard", "-p", str(POLICY), "--agent", AGENT,
            "--", "/no/such/server"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "cannot start the upstream server" in proc.stderr


# ---- --store: the task's session lives in Redis -----------------------------------------------


def test_with_a_store_the_session_is_in_redis_for_every_process_to_see(tmp_path, redis_url):
    record = tmp_path / "received.jsonl"
    outside = agp.load(POLICY, store=redis_url).tasks()  # another process's view of the store
    seen: list[Any] = []

    async def body(s: ClientSession) -> None:
        await s.call_tool("lookup", {"customer": "c-1"})
        await s.call_tool("delete", {"customer": "c-1"})
        seen.append(outside.session("t-redis"))
        seen.append(outside.active())

    run_session(guard_argv("--task-kind", "support", "--task-params", '{"customer": "c-1"}',
                           "--task-id", "t-redis", "--store", redis_url),
                env_for(record), body)
    (_, history), active = seen
    assert [(h.tool, h.decision) for h in history] == [("shop.lookup", "allow"),
                                                       ("shop.delete", "deny")]
    assert history[0].args == {"customer": "c-1"} and active == ["t-redis"]
    # The guard ended the task when the client left, in the store: no process can use it now.
    assert outside.active() == []
    after = outside.decide(agent=AGENT, tool="shop.lookup", task="t-redis",
                           args={"customer": "c-1"})
    assert after.decision == "deny" and "task.ended" in after.rules
    assert received(record) == [{"tool": "lookup", "args": {"customer": "c-1"}}]


def test_a_store_that_goes_away_denies_calls_and_never_forwards_them(tmp_path, redis_server,
                                                                    redis_url):
    record = tmp_path / "received.jsonl"
    guard = RawGuard(guard_argv("--task-kind", "support", "--task-params",
                                '{"customer": "c-1"}', "--store", redis_url), env_for(record))
    start(guard)
    guard.send(call(1, "lookup", {"customer": "c-1"}))
    assert guard.answer_to(1)["result"]["isError"] is False
    redis_server.stop()
    guard.send(call(2, "lookup", {"customer": "c-1"}))
    refused = guard.answer_to(2)["result"]
    assert refused["isError"] is True
    assert refused["content"][0]["text"].startswith("denied by policy:")
    assert "store.unavailable" in refused["content"][0]["text"]
    code, err = guard.close()
    assert code == 0 and "could not end task" in err and "Traceback" not in err
    assert received(record) == [{"tool": "lookup", "args": {"customer": "c-1"}}]


def test_a_store_that_cannot_be_reached_at_start_exits_2():
    proc = subprocess.run(guard_argv("--task-kind", "support", "--task-params",
                                     '{"customer": "c-1"}', "--store", "redis://127.0.0.1:1/0"),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert "the Redis store cannot be reached" in proc.stderr and "Traceback" not in proc.stderr


# ---- --require-identity: the agent proven by a JWT-SVID read from a file ----------------------

IDENTITY_POLICY = POLICY.read_text() + """
forbid unproven on shop.* unless agent.verified
  because "only a proven agent works on customers"
"""


@pytest.fixture(scope="module")
def svid_setup(tmp_path_factory):
    """A trust bundle for the trust domain `test` made with `agp keys`, its signing key, and
    the policy that refuses unproven agents."""
    where = tmp_path_factory.mktemp("svid")
    key = where / "signer.jwk"
    agp_cli = [sys.executable, "-m", "agp.cli", "keys"]
    subprocess.run([*agp_cli, "generate", "-o", str(key)], check=True, capture_output=True)
    trust = subprocess.run([*agp_cli, "public", str(key), "--trust-domain", "test"],
                           check=True, capture_output=True, text=True).stdout
    (where / "trust.json").write_text(trust)
    (where / "policy.agp").write_text(IDENTITY_POLICY)
    return where, json.loads(key.read_text())


def svid(private: dict[str, Any], *, sub: str = AGENT, aud: str = "agp", ttl: int = 3600,
         now: float | None = None) -> str:
    from agp.identity.keys import mint_svid

    return mint_svid(private, sub, aud, ttl, now)


def identity_argv(where: Path, svid_file: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agp.cli", "mcp-guard", "-p", str(where / "policy.agp"),
            "--agent", AGENT, "--prefix", "shop", "--require-identity",
            "--trust", str(where / "trust.json"), "--audience", "agp",
            "--svid-file", str(svid_file), *extra, "--", *UPSTREAM]


def test_the_svid_file_proves_the_agent_and_is_read_again_when_it_changes(tmp_path,
                                                                        svid_setup):
    where, private = svid_setup
    record, token_file, log = tmp_path / "received.jsonl", tmp_path / "svid", tmp_path / "d.jsonl"
    token_file.write_text(svid(private) + "\n")
    guard = RawGuard(identity_argv(where, token_file, "--decision-log", str(log)),
                     env_for(record))
    start(guard)

    def text_of(id: int, customer: str) -> str:
        guard.send(call(id, "lookup", {"customer": customer}))
        return guard.answer_to(id)["result"]["content"][0]["text"]

    assert text_of(1, "valid") == "customer valid: ok"
    token_file.write_text(svid(private, now=time.time() - 7200, ttl=60))  # expired an hour ago
    assert text_of(2, "expired").startswith("denied by policy: shop.lookup; rules: "
                                            "identity.invalid")
    token_file.unlink()
    assert text_of(3, "missing").startswith("denied by policy: shop.lookup; rules: "
                                            "identity.missing")
    token_file.write_text(svid(private, sub="spiffe://test/agents/other"))
    assert "identity.mismatch" in text_of(4, "other")
    token_file.write_text(svid(private, aud="someone-else"))
    assert "identity.invalid" in text_of(5, "audience")
    token_file.write_text(svid(private))  # the SPIFFE agent wrote a fresh one
    assert text_of(6, "fresh") == "customer fresh: ok"
    assert guard.close()[0] == 0
    assert [r["args"]["customer"] for r in received(record)] == ["valid", "fresh"]
    # The allowed calls were decided as a verified identity: the forbid did not fire for them.
    decided = [json.loads(line) for line in log.read_text().splitlines()]
    assert [d["expect"]["decision"] for d in decided] == \
        ["allow", "deny", "deny", "deny", "deny", "allow"]
    assert "unproven" not in decided[0]["expect"]["rules"] + decided[5]["expect"]["rules"]
    assert "unproven" in decided[1]["expect"]["rules"]  # the expired token proved nothing


@pytest.mark.parametrize("drop", ["--trust", "--audience", "--svid-file"])
def test_identity_options_go_together(tmp_path, svid_setup, drop):
    where, private = svid_setup
    token_file = tmp_path / "svid"
    token_file.write_text(svid(private))
    argv = identity_argv(where, token_file)
    i = argv.index(drop)
    del argv[i:i + 2]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "go together" in proc.stderr


def test_an_svid_file_that_cannot_be_read_at_start_exits_2(tmp_path, svid_setup):
    where, _ = svid_setup
    proc = subprocess.run(identity_argv(where, tmp_path / "absent"), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "cannot read the JWT-SVID file" in proc.stderr


# ---- reading lines from a peer ----------------------------------------------------------------


def test_lines_over_the_limit_are_dropped_as_they_come(monkeypatch):
    from agp.integrations import mcp_guard

    monkeypatch.setattr(mcp_guard, "MAX_LINE", 8)
    lines = mcp_guard._Lines()
    too_long = mcp_guard._TOO_LONG
    assert lines.feed(b'{"a":1}\n{"b"') == [b'{"a":1}\n']
    assert lines.feed(b":2}\n") == [b'{"b":2}\n']
    assert lines.feed(b"0123456789") == [] and lines.pending == b""  # not held
    assert lines.feed(b"abcdef") == [] and lines.pending == b"abcdef"  # the same long line
    assert lines.feed(b"ghi\n{}\n") == [too_long, b"{}\n"]
    assert lines.feed(b"x" * 20 + b"\n") == [too_long]  # over the limit within one chunk
    assert lines.feed(b"12345678\n123456789\n") == [b"12345678\n", too_long]


@pytest.mark.parametrize("kind", ["pipe", "regular file"])
def test_a_peer_is_read_line_by_line_from_a_pipe_or_a_regular_file(tmp_path, kind):
    from agp.integrations.mcp_guard import _start_reader

    data = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n' * 3 + b"partial"

    async def collect() -> list[object]:
        if kind == "pipe":
            r, w = os.pipe()
            os.write(w, data)
            os.close(w)
            stream = os.fdopen(r, "rb", buffering=0)
        else:
            (tmp_path / "in").write_bytes(data)
            stream = open(tmp_path / "in", "rb", buffering=0)  # noqa: SIM115
        queue: asyncio.Queue[object] = asyncio.Queue()
        _start_reader(stream, asyncio.get_running_loop(), queue, "test")
        got = []
        while (item := await asyncio.wait_for(queue.get(), 60)) is not None:
            got.append(item)
        stream.close()
        return got

    assert asyncio.run(collect()) == [b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n'] * 3


# ---- protocol 2026-07-28: asks as input_required results ---------------------------------------


def run_modern(argv: list[str], env: dict[str, str], body: Any,
               elicit: str | None = "accept") -> tuple[Any, list[str]]:
    """Run `body(client)` with the SDK's Client pinned to protocol 2026-07-28 (no initialize
    handshake; the client's capabilities travel in every request's `_meta`)."""
    from mcp.client import Client

    asked: list[str] = []

    async def on_elicit(ctx: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        assert elicit is not None
        return ElicitResult(action=elicit)  # type: ignore[arg-type]

    async def main() -> Any:
        async with Client(StdioServerParameters(command=argv[0], args=argv[1:], env=env),
                          mode="2026-07-28",
                          elicitation_callback=on_elicit if elicit else None) as client:
            return await body(client)

    return anyio.run(main), asked


@pytest.mark.parametrize("answer", ["accept", "decline", None])
def test_on_2026_07_28_an_ask_is_an_input_required_result(tmp_path, answer):
    record = tmp_path / "received.jsonl"

    async def body(c: Any) -> Any:
        return (await c.call_tool("refund", {"customer": "c-1", "amount": 500}),
                await c.call_tool("delete", {"customer": "c-1"}),
                await c.call_tool("lookup", {"customer": "c-1"}))

    (refund, delete, lookup), asked = run_modern(
        guard_argv("--task-kind", "support", "--task-params", '{"customer": "c-1"}'),
        env_for(record), body, elicit=answer)
    assert delete.is_error and delete.content[0].text.startswith(
        "denied by policy: shop.delete; rules: no_deletes")
    assert lookup.content[0].text == "customer c-1: ok"
    if answer == "accept":
        assert len(asked) == 1 and "shop.refund" in asked[0] and "refunds over 100" in asked[0]
        assert refund.is_error is False and refund.content[0].text == "refunded 500 to c-1"
    else:
        assert len(asked) == (1 if answer else 0)  # a client without elicitation is not asked
        assert refund.is_error and refund.content[0].text.startswith(
            "needs approval: shop.refund; rules: large_refunds")
    assert received(record) == (
        [{"tool": "refund", "args": {"customer": "c-1", "amount": 500}}] if answer == "accept"
        else []) + [{"tool": "lookup", "args": {"customer": "c-1"}}]


def modern_call(id: Any, tool: str, args: dict[str, Any], **extra: Any) -> str:
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}}}
    return json.dumps({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool, "arguments": args, "_meta": meta, **extra}})


def test_on_2026_07_28_an_approval_holds_only_for_the_call_asked_about_and_once(tmp_path):
    record = tmp_path / "received.jsonl"
    guard = RawGuard(guard_argv(), env_for(record))
    big = {"customer": "c-1", "amount": 500}
    accept = {"agp/approval": {"action": "accept"}}

    def ask(id: int) -> str:
        guard.send(modern_call(id, "refund", big))
        result = guard.answer_to(id)["result"]
        assert result["resultType"] == "input_required"
        assert result["inputRequests"]["agp/approval"]["method"] == "elicitation/create"
        return result["requestState"]

    state = ask(1)
    # A state the guard never issued: the call is decided afresh, and asked about again.
    guard.send(modern_call(2, "refund", big, inputResponses=accept, requestState=state + "x"))
    assert guard.answer_to(2)["result"]["resultType"] == "input_required"
    # The approval of one call does not carry over to another.
    guard.send(modern_call(3, "refund", {"customer": "c-1", "amount": 5000},
                           inputResponses=accept, requestState=state))
    text = guard.answer_to(3)["result"]["content"][0]["text"]
    assert text.startswith("needs approval: shop.refund")
    # A state is used once, accepted or not; a declined or malformed answer refuses.
    guard.send(modern_call(4, "refund", big, inputResponses=accept, requestState=state))
    assert guard.answer_to(4)["result"]["resultType"] == "input_required"
    for n, answers in enumerate([{"agp/approval": {"action": "decline"}}, {},
                                 {"agp/approval": {"roots": []}}], 5):
        guard.send(modern_call(n, "refund", big, inputResponses=answers, requestState=ask(n)))
        assert guard.answer_to(n)["result"]["content"][0]["text"].startswith("needs approval:")
    guard.send(modern_call(8, "refund", big, inputResponses={"agp/approval": {"action": "yes"}},
                           requestState=ask(8)))
    assert guard.answer_to(8)["error"]["code"] == -32602  # not an answer at all
    # The real thing: forwarded, without the guard's own fields.
    guard.send(modern_call(9, "refund", big, inputResponses=accept, requestState=ask(9)))
    assert guard.answer_to(9)["result"]["content"][0]["text"] == "refunded 500 to c-1"
    assert guard.close()[0] == 0
    assert received(record) == [{"tool": "refund", "args": big}]


def test_guards_sharing_a_store_share_a_task_and_only_its_opener_ends_it(tmp_path, redis_url):
    """The agent's two MCP servers, each behind its own guard, in one task: one session."""
    task = ["--task-kind", "support", "--task-params", '{"customer": "c-1"}', "--task-id", "t-2",
            "--store", redis_url]
    outside = agp.load(POLICY, store=redis_url).tasks()
    first = RawGuard(guard_argv(*task), env_for(tmp_path / "first.jsonl"))
    start(first)
    second = RawGuard(guard_argv(*task), env_for(tmp_path / "second.jsonl"))
    start(second)
    first.send(call(1, "lookup", {"customer": "c-1"}))
    assert first.answer_to(1)["result"]["isError"] is False
    second.send(call(1, "delete", {"customer": "c-1"}))
    assert second.answer_to(1)["result"]["isError"] is True
    assert [(h.tool, h.decision) for h in outside.session("t-2")[1]] == [
        ("shop.lookup", "allow"), ("shop.delete", "deny")]
    code, err = second.close()
    assert code == 0 and "joining task 't-2'" in err
    assert outside.active() == ["t-2"]  # the guard that joined leaves the task running
    first.send(call(2, "lookup", {"customer": "c-1"}))
    assert first.answer_to(2)["result"]["isError"] is False
    assert first.close()[0] == 0
    assert outside.active() == []


@pytest.mark.parametrize("other", [{"--task-kind": "other"}, {"--task-params": '{"customer": "x"}'}])
def test_a_task_of_another_kind_or_params_or_ended_is_not_joined(tmp_path, redis_url,
                                                                 write_policy, other):
    policy = write_policy(POLICY.read_text() + "task other { tools shop.* }\n")
    outside = agp.load(policy, store=redis_url).tasks()
    outside.start({"id": "t-3", "kind": "support", "params": {"customer": "c-1"}}, agent=AGENT)

    def guard(**changes: str) -> subprocess.CompletedProcess[str]:
        options = {"--task-kind": "support", "--task-params": '{"customer": "c-1"}',
                   "--task-id": "t-3", "--store": redis_url, **changes}
        argv = [sys.executable, "-m", "agp.cli", "mcp-guard", "-p", str(policy), "--agent",
                AGENT, *[x for kv in options.items() for x in kv], "--", *UPSTREAM]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    proc = guard(**other)
    assert proc.returncode == 2 and "task 't-3' is already running" in proc.stderr
    outside.end("t-3")
    proc = guard()
    assert proc.returncode == 2 and "task 't-3' is already ended" in proc.stderr

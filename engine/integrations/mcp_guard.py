"""`agp mcp-guard`: a policy gate on stdio in front of any stdio MCP server.

The guard is a message-level proxy, not an MCP server of its own built on the SDK's session
classes: a session would answer `initialize` itself, negotiate its own protocol version and
capabilities, and re-type every message through the version it knows, so the client would no
longer talk to the upstream server faithfully. Instead every line from either side is parsed
into one of the SDK's JSON-RPC envelopes (agp.integrations.jsonrpc: duplicate keys, batches and
unknown members refused) and re-serialised, and only `tools/call` is read further, with the
SDK's `CallToolRequestParams`.

What reaches the upstream: requests, notifications, and answers to the upstream's own requests
(sampling, roots, its own elicitations), each parsed; a `tools/call` only after the policy
allowed it (or the user approved an ask). What reaches the client: the upstream's messages,
the guard's refusals and its own `elicitation/create` requests. An answer from the client is
taken by the guard only for an id the guard issued, and goes to the upstream only for an id the
upstream issued; anything else is dropped (and said on stderr).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    CallToolRequestParams,
    CancelledNotificationParams,
    ElicitResult,
)
from mcp_types.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
)
from pydantic import ValidationError

from agp.integrations.guard import refusal
from agp.integrations.jsonrpc import MAX_LINE, MessageError, dumps, error, parse_line
from agp.model import Decision
from agp.runtime import TaskRuntime

# Error code of the answers to requests in flight when the upstream server goes away.
UPSTREAM_GONE = -32000
MODERN = "2026-07-28"  # the first protocol version without the initialize handshake
APPROVAL = "agp/approval"  # the key of the guard's elicitation in an input_required result
MAX_PENDING = 1024  # input_required answers awaiting their retry; the oldest are forgotten
MAX_SVID_FILE = 64 * 1024  # characters read of the SVID file; a JWT-SVID is far smaller
_TOO_LONG = object()  # what a reader hands on for a line over MAX_LINE (never read whole)


class SvidFile:
    """A JWT-SVID kept in a file that its issuer (a SPIFFE agent, say) rewrites before it
    expires.

    The file is read again for every call rather than when its size or modification time
    changes: two rewrites within one tick of the file system's clock, with tokens of the same
    length (the usual case), look unchanged to `stat`, and the guard would go on presenting
    the old token. Reading a small file costs microseconds next to the call's round trip.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> str | None:
        """The current token, or None when the file cannot be read or is empty (the call is
        then decided without one, so a policy that requires identity denies it)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                return f.read(MAX_SVID_FILE).strip() or None
        except (OSError, UnicodeDecodeError):
            return None


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """Who calls, in which task, and how tool names are written in the policy."""

    agent: str  # the agent's id, `agent.id` of every decided call
    task: str | None = None  # the task instance the calls are decided in, or none
    prefix: str | None = None  # `--prefix NAME`: the policy sees NAME.toolname
    svid: SvidFile | None = None  # the agent's JWT-SVID, proving `agent`

    def tool(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def caller(self) -> str | dict[str, Any]:
        """The `agent` of a call: the id, with the current SVID when there is one."""
        if self.svid is None:
            return self.agent
        token = self.svid.read()
        return {"id": self.agent} if token is None else {"id": self.agent, "svid": token}


def refused_result(text: str, decision: Decision) -> dict[str, Any]:
    """A CallToolResult with `isError`, the refusal first, and the Decision JSON in `_meta`.
    `resultType` is required by 2026-07-28 clients and ignored by earlier ones."""
    return {"content": [{"type": "text", "text": text}], "isError": True,
            "resultType": "complete", "_meta": {"agp/decision": decision.to_json()}}


def _approval(tool: str, args: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """The params of the elicitation that asks the user about a call: what it is, the rules
    and the reasons, and nothing to fill in (accept or decline)."""
    message = (f"The agent asks to call {tool} with {json.dumps(args, ensure_ascii=False)}. "
               + refusal("Policy asks for approval", tool, decision).split("; ", 1)[1])
    return {"mode": "form", "message": message,
            "requestedSchema": {"type": "object", "properties": {}}}


def _modern_capabilities(params: CallToolRequestParams) -> dict[str, Any] | None:
    """The client's capabilities declared on a request of protocol 2026-07-28 or later (they
    travel in every request's `_meta` there, with no initialize handshake); None for a request
    of a handshake-era connection."""
    meta: dict[str, Any] = dict(params.meta or {})
    version = meta.get(PROTOCOL_VERSION_META_KEY)
    if not isinstance(version, str) or version < MODERN:
        return None
    capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY)
    return capabilities if isinstance(capabilities, dict) else {}


class Guard:
    """One client, one upstream server, one task instance of one runtime."""

    def __init__(self, runtime: TaskRuntime, settings: GuardSettings, command: list[str], *,
                 client_in: IO[bytes], client_out: IO[bytes],
                 log: Callable[[str], None] | None = None,
                 approve: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.runtime = runtime
        self.settings = settings
        self.command = command
        self.client_in = client_in
        self.client_out = client_out
        self.log = log or (lambda text: print(f"agp mcp-guard: {text}", file=sys.stderr,
                                               flush=True))
        self.approve = approve
        self.elicitation = False  # whether the client declared the elicitation capability
        # Requests in flight, by id: the client's at the upstream, the upstream's at the client,
        # the guard's own at the client (elicitations), and the client's calls held by the
        # guard while it asks the user.
        self.at_upstream: set[RequestId] = set()
        self.at_client: set[RequestId] = set()
        self.asked: dict[RequestId, asyncio.Future[dict[str, Any] | None]] = {}
        self.held: dict[RequestId, asyncio.Task[None]] = {}
        # Calls answered `input_required` (2026-07-28), by the state their retry must carry.
        self.pending: dict[str, tuple[str, dict[str, Any], Decision]] = {}
        self._ids = f"agp-{secrets.token_hex(8)}-"  # no peer can guess the guard's own ids
        self._next = 0
        self.upstream: subprocess.Popen[bytes] | None = None

    # ---- running ------------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until the client closes its input (0) or the upstream goes away (1).

        Raises OSError when the upstream cannot be started.
        """
        self.upstream = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, bufsize=0)
        assert self.upstream.stdin is not None and self.upstream.stdout is not None
        loop = asyncio.get_running_loop()
        from_client: asyncio.Queue[object] = asyncio.Queue()
        from_upstream: asyncio.Queue[object] = asyncio.Queue()
        _start_reader(self.client_in, loop, from_client, "client")
        _start_reader(self.upstream.stdout, loop, from_upstream, "upstream")
        client = asyncio.ensure_future(self._pump(from_client, self.from_client))
        upstream = asyncio.ensure_future(self._pump(from_upstream, self.from_upstream))
        done, _ = await asyncio.wait({client, upstream}, return_when=asyncio.FIRST_COMPLETED)
        for task in self.held.values():
            task.cancel()
        if upstream in done:
            client.cancel()
            self._upstream_gone()
            self._stop_upstream()
            return 1
        upstream.cancel()
        self._stop_upstream()
        return 0

    async def _pump(self, queue: asyncio.Queue[object],
                    handle: Callable[[object], None]) -> None:
        while (line := await queue.get()) is not None:
            handle(line)

    def _stop_upstream(self) -> None:
        proc = self.upstream
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:  # the upstream already closed its end: nothing left to tell it
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _upstream_gone(self) -> None:
        """Answer every request still waiting for the upstream: it will never answer."""
        self.log("the upstream server exited; answering the requests in flight and stopping")
        for id in sorted(self.at_upstream | set(self.held), key=str):
            self._to_client(error(id, UPSTREAM_GONE, "the upstream MCP server exited"))
        self.at_upstream.clear()
        self.held.clear()

    # ---- writing ------------------------------------------------------------------------------

    def _to_client(self, message: JSONRPCMessage) -> None:
        try:
            self.client_out.write(dumps(message))
            self.client_out.flush()
        except (OSError, ValueError):
            pass  # the client has gone; its input closes next and the guard stops

    def _to_upstream(self, message: JSONRPCMessage) -> None:
        stdin = self.upstream.stdin if self.upstream is not None else None
        try:
            assert stdin is not None
            stdin.write(dumps(message))
        except (OSError, ValueError):
            if isinstance(message, JSONRPCRequest):
                self.at_upstream.discard(message.id)
                self._to_client(error(message.id, UPSTREAM_GONE,
                                      "the upstream MCP server exited"))

    # ---- the client's messages ----------------------------------------------------------------

    def from_client(self, line: object) -> None:
        message = self._parse(line, "client")
        if message is None:
            return
        try:
            self._from_client(message)
        except Exception as exc:  # a defect of agp: say so, and answer; the call was not made
            self.log(f"internal error on a message from the client: {exc!r}")
            if isinstance(message, JSONRPCRequest):
                self._to_client(error(message.id, INTERNAL_ERROR,
                                      f"agp mcp-guard internal error: {exc}"))

    def _from_client(self, message: JSONRPCMessage) -> None:
        if isinstance(message, JSONRPCRequest):
            self._client_request(message)
        elif isinstance(message, JSONRPCNotification):
            self._client_notification(message)
        else:
            self._client_answer(message)

    def _parse(self, line: object, side: str) -> JSONRPCMessage | None:
        """The message of a line, or None after answering (the client) or logging a bad one."""
        try:
            if line is _TOO_LONG:
                raise MessageError(f"a message is at most {MAX_LINE} bytes")
            assert isinstance(line, bytes)
            if not line.strip():
                return None
            return parse_line(line)
        except MessageError as exc:
            self.log(f"refused a message from the {side}: {exc}")
            if side == "client":
                self._to_client(error(exc.id, exc.code, f"refused by agp mcp-guard: {exc}"))
            elif exc.id is not None and isinstance(line, bytes) and b'"method"' in line:
                self._to_upstream(error(exc.id, exc.code, f"refused by agp mcp-guard: {exc}"))
            return None

    def _client_request(self, request: JSONRPCRequest) -> None:
        if request.id in self.at_upstream or request.id in self.held:
            self._to_client(error(request.id, INVALID_REQUEST,
                                  "refused by agp mcp-guard: a request with this id is in flight"))
            return
        if request.method == "tools/call":
            self._call(request)
            return
        if request.method == "initialize" and request.params is not None:
            capabilities = request.params.get("capabilities")
            self.elicitation = isinstance(capabilities, dict) and \
                isinstance(capabilities.get("elicitation"), dict)
        self.at_upstream.add(request.id)
        self._to_upstream(request)

    def _client_notification(self, note: JSONRPCNotification) -> None:
        if note.method == "tools/call":
            self._to_client(error(None, INVALID_REQUEST,
                                  "refused by agp mcp-guard: a tools/call needs an id"))
            return
        if note.method == "notifications/cancelled" and note.params is not None:
            try:
                cancelled = CancelledNotificationParams.model_validate(note.params).request_id
            except ValidationError:
                cancelled = None
            held = self.held.pop(cancelled, None) if cancelled is not None else None
            if held is not None:  # the upstream never saw that call: nothing to tell it
                held.cancel()
                return
        self._to_upstream(note)

    def _client_answer(self, answer: JSONRPCResponse | JSONRPCError) -> None:
        id = answer.id
        if id is not None and id in self.asked:
            future = self.asked.pop(id)
            if not future.done():
                future.set_result(answer.result if isinstance(answer, JSONRPCResponse) else None)
        elif id is not None and id in self.at_client:
            self.at_client.discard(id)
            self._to_upstream(answer)
        else:
            self.log(f"dropped an answer from the client to a request nobody made (id {id!r})")

    # ---- tools/call ---------------------------------------------------------------------------

    def _call(self, request: JSONRPCRequest) -> None:
        try:
            params = CallToolRequestParams.model_validate(request.params or {})
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "params"
            self._to_client(error(request.id, INVALID_PARAMS,
                                  f"refused by agp mcp-guard: {where}: {first['msg']}"))
            return
        tool = self.settings.tool(params.name)
        args = params.arguments or {}
        if params.request_state is not None and params.request_state in self.pending:
            self._answered(request, params, tool, args)  # the retry of a call the guard asked
            return
        decision = self._decide(tool, args)
        capabilities = _modern_capabilities(params)
        if decision.decision == "allow":
            self.at_upstream.add(request.id)
            self._to_upstream(request)
        elif decision.decision == "ask" and capabilities is not None:
            if isinstance(capabilities.get("elicitation"), dict):
                self._input_required(request.id, tool, args, decision)
            else:
                self._refuse(request.id, refusal("needs approval", tool, decision), decision)
        elif decision.decision == "ask" and self.elicitation:
            self.held[request.id] = asyncio.ensure_future(self._ask(request, tool, args, decision))
        else:
            head = "denied by policy" if decision.decision == "deny" else "needs approval"
            self._refuse(request.id, refusal(head, tool, decision), decision)

    def _decide(self, tool: str, args: dict[str, Any]) -> Decision:
        try:
            return self.runtime.decide(agent=self.settings.caller(), tool=tool,
                                       task=self.settings.task, args=args)
        except Exception as exc:  # fail closed: whatever went wrong, the call is not made
            self.log(f"deciding {tool} failed: {exc}")
            return Decision(decision="deny", ttl=0, rules=["guard.error"],
                            reasons=[f"the decision failed: {exc}"])

    def _refuse(self, id: RequestId, text: str, decision: Decision) -> None:
        self._to_client(JSONRPCResponse(jsonrpc="2.0", id=id,
                                        result=refused_result(text, decision)))

    async def _ask(self, request: JSONRPCRequest, tool: str, args: dict[str, Any],
                   decision: Decision) -> None:
        """Ask the user through the client; forward the call only on an explicit accept."""
        id: RequestId = f"{self._ids}{self._next}"
        self._next += 1
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self.asked[id] = future
        self._to_client(JSONRPCRequest(jsonrpc="2.0", id=id, method="elicitation/create",
                                       params=_approval(tool, args, decision)))
        try:
            result = await future
        finally:
            self.asked.pop(id, None)
        if self.held.pop(request.id, None) is None:
            return  # cancelled meanwhile: nobody waits for an answer
        try:
            accepted = result is not None and ElicitResult.model_validate(result).action == "accept"
        except ValidationError:
            accepted = False
        if not accepted:
            self._refuse(request.id, refusal("needs approval", tool, decision), decision)
            return
        if not self._approved(request.id, tool, args):
            return
        self.at_upstream.add(request.id)
        self._to_upstream(request)

    def _input_required(self, id: RequestId, tool: str, args: dict[str, Any],
                        decision: Decision) -> None:
        """Ask the user the 2026-07-28 way: answer the call with an `input_required` result
        holding the elicitation; the client asks the user and sends the call again with the
        answer and the state, which binds the answer to this very call (_answered)."""
        state = secrets.token_urlsafe(24)
        self.pending[state] = (tool, args, decision)
        while len(self.pending) > MAX_PENDING:  # calls never sent again: forget the oldest
            del self.pending[next(iter(self.pending))]
        result = {"resultType": "input_required", "requestState": state, "inputRequests": {
            APPROVAL: {"method": "elicitation/create", "params": _approval(tool, args, decision)}}}
        self._to_client(JSONRPCResponse(jsonrpc="2.0", id=id, result=result))

    def _answered(self, request: JSONRPCRequest, params: CallToolRequestParams, tool: str,
                  args: dict[str, Any]) -> None:
        """The retry of a call answered `input_required`: forwarded only when it is the call
        that was asked about, with the state the guard issued for it (single use), and the
        user accepted; the guard's own fields are taken off before the upstream sees it."""
        assert params.request_state is not None
        asked_tool, asked_args, decision = self.pending.pop(params.request_state)
        answer = (params.input_responses or {}).get(APPROVAL)
        if (asked_tool, asked_args) != (tool, args) or not isinstance(answer, ElicitResult) \
                or answer.action != "accept":
            self._refuse(request.id, refusal("needs approval", tool, decision), decision)
            return
        if not self._approved(request.id, tool, args):
            return
        forwarded = {k: v for k, v in (request.params or {}).items()
                     if k not in ("inputResponses", "requestState")}
        self.at_upstream.add(request.id)
        self._to_upstream(request.model_copy(update={"params": forwarded}))

    def _approved(self, id: RequestId, tool: str, args: dict[str, Any]) -> bool:
        """Record a user's approval (the call joins the session as an allow); False, after
        answering an error, when it cannot be recorded: the call is then not made."""
        if self.approve is None:
            return True
        try:
            self.approve(tool, args)
        except Exception as exc:  # the approval is not on record: fail closed
            self.log(f"recording the approval of {tool} failed: {exc}")
            self._to_client(error(id, INTERNAL_ERROR,
                                  f"agp mcp-guard could not record the approval: {exc}"))
            return False
        return True

    # ---- the upstream's messages --------------------------------------------------------------

    def from_upstream(self, line: object) -> None:
        message = self._parse(line, "upstream")
        if message is None:
            return
        if isinstance(message, JSONRPCRequest):
            if message.id in self.asked:  # it would be taken for the guard's own request
                self._to_upstream(error(message.id, INTERNAL_ERROR,
                                        "refused by agp mcp-guard: this id is in use"))
                return
            self.at_client.add(message.id)
            self._to_client(message)
        elif isinstance(message, JSONRPCNotification):
            self._to_client(message)
        elif message.id is not None and message.id in self.at_upstream:
            self.at_upstream.discard(message.id)
            self._to_client(message)
        else:
            self.log(f"dropped an answer from the upstream to a request nobody made "
                     f"(id {message.id!r})")


def _start_reader(stream: IO[bytes], loop: asyncio.AbstractEventLoop,
                  queue: asyncio.Queue[object], name: str) -> None:
    """Hand each line of `stream` to `queue`; None at the end. A line over MAX_LINE is dropped
    as it comes (never held whole) and handed on as _TOO_LONG.

    A pipe, socket or terminal is read by the event loop itself when it is readable (one
    `os.read` per readiness never blocks on those, and needs no O_NONBLOCK, which would leak to
    whoever shares the descriptor): no thread, no hand-over between threads on every message,
    which is most of the guard's own latency. A regular file, which the loop cannot watch, is
    read by a thread. Both read the file descriptor, not the buffered file: at exit the thread
    may still be blocked reading, and a thread blocked inside a buffered file holds that file's
    lock, which the interpreter's shutdown then waits for.
    """
    fd = stream.fileno()
    lines = _Lines()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: the guard is gone
            pass

    def readable() -> None:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            chunk = b""
        for item in lines.feed(chunk):
            queue.put_nowait(item)
        if not chunk:
            loop.remove_reader(fd)
            queue.put_nowait(None)

    def read() -> None:
        try:
            while chunk := os.read(fd, 1 << 16):
                for item in lines.feed(chunk):
                    put(item)
        except OSError:  # the peer's pipe broke: as at its end of input, nothing more comes
            pass
        put(None)

    try:
        loop.add_reader(fd, readable)
    except (OSError, ValueError, NotImplementedError):  # a regular file (epoll refuses those)
        threading.Thread(target=read, name=f"agp-mcp-guard-{name}", daemon=True).start()


class _Lines:
    """Splits the bytes read from a peer into lines, dropping a line over MAX_LINE as it comes
    (never held whole) and handing on _TOO_LONG in its place."""

    def __init__(self) -> None:
        self.pending = bytearray()
        self.skipping = False  # inside a line over MAX_LINE

    def feed(self, chunk: bytes) -> list[object]:
        out: list[object] = []
        pending = self.pending
        start = len(pending)  # only the new bytes can hold a line end
        pending += chunk
        while (end := pending.find(b"\n", start)) >= 0:
            start = 0
            if self.skipping or end > MAX_LINE:  # a long line may end in the chunk that
                out.append(_TOO_LONG)               # took it over the limit
                self.skipping = False
            else:
                out.append(bytes(pending[: end + 1]))
            del pending[: end + 1]
        if len(pending) > MAX_LINE:
            self.skipping = True
            pending.clear()
        return out


def serve(runtime: TaskRuntime, settings: GuardSettings, command: list[str], *,
          approve: Callable[[str, dict[str, Any]], None] | None = None) -> int:
    """Run the guard on this process's stdin and stdout; its exit status."""
    guard = Guard(runtime, settings, command, client_in=sys.stdin.buffer,
                  client_out=sys.stdout.buffer, approve=approve)
    return asyncio.run(guard.run())

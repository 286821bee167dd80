"""The HTTP/JSON API of `agp serve` (an ASGI app on Starlette): every endpoint of docs/serve.md.

Everything it decides or changes goes through the embedding API (`Engine.decide`, the task
runtime of `engine.tasks()`, the engine's grants and store): the service only turns HTTP into
those calls and their answers and errors into HTTP. What it adds is what a network peer needs:
bodies are bounded in size and time, parsed strictly (agp.jsonio), a `now` in a body is replaced
by the service's clock, and nothing a client sends can make it answer 500 or stop.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TextIO, TypeVar

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.requests import Request as HTTPRequest
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agp.engine import Engine
from agp.identity.grants import Grants
from agp.jsonio import JSONInputError, loads
from agp.model import Decision, parse_timestamp
from agp.runtime import TaskError, TaskRuntime
from agp.serve.metrics import Metrics
from agp.serve.tracing import tracing_from_env
from agp.steps import invalid
from agp.store import Store, StoreUnavailable
from agp.store.memory import MemoryStore

log = logging.getLogger("agp.serve")

T = TypeVar("T")

# Paths that answer without an API key: a load balancer's probes carry none.
HEALTH = frozenset({"/healthz", "/readyz"})


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """How the service treats its callers (the command's options, docs/serve.md)."""

    trust_request_time: bool = False  # keep a body's `now` (replaying recorded traffic)
    api_key: str | None = None  # required as `Authorization: Bearer <key>` when set
    max_body_bytes: int = 1 << 20
    request_timeout: float = 10.0  # seconds to read a body and answer it
    access_log: TextIO | None = None  # one JSON line per request


DEFAULTS = ServeOptions()


class Problem(Exception):
    """An answer other than 200 with a JSON problem body (RFC 9457)."""

    TITLES = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
              405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large", 500: "Internal Server Error", 501: "Not Implemented",
              503: "Service Unavailable", 504: "Gateway Timeout"}

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def response(self) -> Response:
        return problem_response(self.status, self.detail)


def problem_response(status: int, detail: str) -> Response:
    body = {"type": "about:blank", "title": Problem.TITLES.get(status, "Error"),
            "status": status, "detail": detail}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(json.dumps(body), status, headers, media_type="application/problem+json")


def json_response(value: object, status: int = 200) -> Response:
    return Response(json.dumps(value, ensure_ascii=False, allow_nan=False), status,
                    media_type="application/json")


def _clock() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """The last reload attempt, as `/readyz` shows it."""

    result: str  # "ok" | "error"
    at: str
    policy: str | None = None
    error: str | None = None


class Service:
    """One engine served over HTTP. `app` is the ASGI application."""

    def __init__(self, engine: Engine, options: ServeOptions = DEFAULTS) -> None:
        self.engine = engine
        self.options = options
        self.store: Store = engine.store
        self.tasks: TaskRuntime = engine.tasks()
        # A decision needs the store only for a kept task or a grant: in memory that is a
        # dictionary lookup, decided on the event loop; a store across the network is waited
        # for in a worker thread, so that the loop keeps serving meanwhile.
        self._inline = isinstance(self.store, MemoryStore)
        self.metrics = Metrics()
        self.tracing = tracing_from_env()
        self.last_reload: ReloadResult | None = None
        routes = [
            Route("/v1/decide", self._endpoint(self.decide), methods=["POST"]),
            Route("/v1/decide/batch", self._endpoint(self.decide_batch), methods=["POST"]),
            Route("/v1/tasks", self._endpoint(self.start_task), methods=["POST"]),
            Route("/v1/tasks/{id}/delegate", self._endpoint(self.delegate), methods=["POST"]),
            Route("/v1/tasks/{id}/calls", self._endpoint(self.call), methods=["POST"]),
            Route("/v1/tasks/{id}/observe", self._endpoint(self.observe), methods=["POST"]),
            Route("/v1/tasks/{id}/end", self._endpoint(self.end_task), methods=["POST"]),
            Route("/v1/grants/introspect", self._endpoint(self.introspect), methods=["POST"]),
            Route("/.well-known/jwks.json", self._endpoint(self.jwks, body=False)),
            Route("/healthz", self._endpoint(self.healthz, body=False)),
            Route("/readyz", self._endpoint(self.readyz, body=False)),
            Route("/metrics", self._endpoint(self.render_metrics, body=False)),
        ]
        self.app: ASGIApp = Guard(Starlette(routes=routes, exception_handlers={
            HTTPException: _http_problem}), self)

    # ---- operations ---------------------------------------------------------------------------

    def reload(self) -> ReloadResult:
        """Load the policy set again; a set that does not load leaves the old one serving."""
        at = _clock().isoformat().replace("+00:00", "Z")
        try:
            self.engine.reload()
        except Exception as exc:  # a PolicyError, or a file that vanished mid-read
            self.reloaded(ReloadResult("error", at, error=str(exc)))
        else:
            self.reloaded(ReloadResult("ok", at, policy=self.engine.policy_hash))
        assert self.last_reload is not None
        return self.last_reload

    def reloaded(self, result: ReloadResult) -> None:
        """Record a reload (by `reload`, or by the engine's file watcher)."""
        self.last_reload = result
        self.metrics.reloads.labels(result.result).inc()
        if result.result == "ok":
            log.info("agp serve: reloaded policy set %s", result.policy)
        else:
            log.error("agp serve: reload refused, the old policy set keeps serving: %s",
                      result.error)

    # ---- deciding -----------------------------------------------------------------------------

    def _decide_one(self, value: object) -> Decision:
        """One self-contained request, as `Engine.decide` decides it, at the service's clock."""
        unavailable = False
        if isinstance(value, dict):
            task = value.get("task")
            task_id = task.get("id") if isinstance(task, dict) else None
            try:
                kept = isinstance(task_id, str) and self._task_kept(task_id)
            except StoreUnavailable:  # whether the task is kept cannot be known: deny
                kept, unavailable = False, True
            if kept:
                return self._count(invalid(self.engine.evaluator.policy, [
                    f"task.id: task {task_id!r} is kept by this service: decide calls of a kept "
                    f"task through /v1/tasks/{{id}}/calls"]))
            value = self._at_clock(value)
        return self._measured(
            lambda: self.engine.decide(value,  # type: ignore[arg-type]  # the engine checks it
                                       store_unavailable=unavailable), value, None)

    def _measured(self, decide: Callable[[], Decision], request: object,
                  task_id: str | None) -> Decision:
        """Decide, counting the decision and its time in the metrics, in a span when traced."""
        if self.tracing is None:
            started = time.perf_counter()
            decision = decide()
            self.metrics.decided(decision, time.perf_counter() - started)
            return decision
        with self.tracing.tracer.start_as_current_span("agp.decide") as span:
            started = time.perf_counter()
            decision = decide()
            self.metrics.decided(decision, time.perf_counter() - started)
            # What was decided, never the arguments: they may hold what a trace must not.
            tool = request.get("tool") if isinstance(request, dict) else None
            span.set_attributes({"agp.decision": decision.decision, "agp.ttl": decision.ttl,
                                 "agp.rules": decision.rules, "agp.policy": decision.policy,
                                 **({"agp.tool": tool} if isinstance(tool, str) else {}),
                                 **({"agp.task": task_id} if task_id is not None else {})})
            return decision

    def close(self) -> None:
        """Flush the spans not yet exported (the engine is closed by its owner)."""
        if self.tracing is not None:
            self.tracing.close()

    def _count(self, decision: Decision) -> Decision:
        self.metrics.decided(decision, 0.0)
        return decision

    def _at_clock(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body with `now` set to the service's clock. A `now` that is not a valid timestamp
        stays, so that the engine denies the request naming it."""
        if self.options.trust_request_time and "now" in body:
            return body
        if body.get("now") is not None:
            try:
                parse_timestamp(body["now"])
            except (ValueError, TypeError, OverflowError):
                return body
        return {**body, "now": _clock()}

    async def decide(self, body: dict[str, Any], params: dict[str, str]) -> Response:
        decision = self._decide_one(body) if self._inline else \
            await self._run(self._decide_one, body)
        return json_response(decision.to_json())

    async def decide_batch(self, body: dict[str, Any], params: dict[str, str]) -> Response:
        _fields(body, required={"requests": list})
        requests: list[object] = body["requests"]

        def decide_all() -> list[dict[str, Any]]:
            return [self._decide_one(r).to_json() for r in requests]

        return json_response({"decisions": await self._run(decide_all)})

    # ---- tasks --------------------------------------------------------------------------------

    def _task_kept(self, task_id: str) -> bool:
        return self.tasks.known(task_id)

    def _known(self, task_id: str) -> None:
        if not self._task_kept(task_id):
            raise Problem(404, f"task {task_id!r} is not known to this service")

    async def start_task(self, body: dict[str, Any], params: dict[str, str]) -> Response:
        _fields(body, required={"task": dict, "agent": (str, dict)}, optional={"chain": list})
        task = dict(body["task"])
        task_id = task.setdefault("id", str(uuid.uuid4()))

        def start() -> None:
            known = Problem(409, f"task {task_id!r} is known already: a task id names one "
                                 "task instance for good")
            if isinstance(task_id, str) and self._task_kept(task_id):
                raise known
            try:
                self.tasks.start(task, body["agent"], body.get("chain"))
            except TaskError:
                # Started by someone else since the look above (another instance, perhaps).
                if isinstance(task_id, str) and self._task_kept(task_id):
                    raise known from None
                raise

        await self._run(start)
        return json_response({"id": task_id}, 201)

    async def delegate(self, body: dict[str, Any], params: dict[str, str]) -> Response:
        _fields(body, required={"from": str, "to": str}, optional={"scope": dict})
        task_id = params["id"]

        def delegate() -> None:
            self._known(task_id)
            self.tasks.delegate(task_id, body["from"], body["to"], body.get("scope"))

        await self._run(delegate)
        return json_response({})

    async def observe(self, body: dict[str, Any], params: dict[str, str]) -> Response:
        _fields(body, required={"data": list})
        task_id = params["id"]

        def observe() -> None:
            self._known(task_id)
            self.tasks.observe(task_id, body["data"])

        await self._run(observe)
        return json_response({})

    async def end_task(self, body: dict[str, Any], params: dict[str, str]) -> Response:
        _fields(body)
        task_id = params["id"]

        def end() -> None:
            self._known(task_id)
            self.tasks.end(task_id)

        await self._run(end)
        return json_response({})

    _CALL_FIELDS = ("intent", "args", "data", "target", "context")

    async def call(self, body: dict[str, Any], params: dict[str, str]) -> Response:
        task_id = params["id"]

        def call() -> Decision:
            try:
                self._known(task_id)
            except StoreUnavailable:
                pass  # the runtime denies the call `store.unavailable`, as a call is answered
            unknown = sorted(set(body) - {"agent", "tool", "now", *self._CALL_FIELDS})
            if unknown or "agent" not in body or "tool" not in body:
                errors = [f"{k}: unknown field" for k in unknown]
                errors += [f"{k}: field required" for k in ("agent", "tool") if k not in body]
                return self._count(invalid(self.engine.evaluator.policy, errors))
            now = self._at_clock(body)["now"]
            fields = {k: body[k] for k in self._CALL_FIELDS if k in body}
            return self._measured(lambda: self.tasks.decide(
                body["agent"], body["tool"], task_id, now, **fields), body, task_id)

        decision = await self._run(call)
        return json_response(decision.to_json())

    # ---- grants -------------------------------------------------------------------------------

    async def introspect(self, body: dict[str, Any], params: dict[str, str]) -> Response:
        _fields(body, required={"token": str})
        grants = self._grants()
        if grants is None:  # this service signs no grants: no token is one of its grants
            return json_response({"active": False})
        return json_response(await self._run(grants.introspect, body["token"]))

    async def jwks(self, body: dict[str, Any], params: dict[str, str]) -> Response:
        grants = self._grants()
        return json_response(grants.public_jwks() if grants is not None else {"keys": []})

    def _grants(self) -> Grants | None:
        try:
            return self.engine.grants
        except ValueError:  # no issuer key
            return None

    # ---- health -------------------------------------------------------------------------------

    async def healthz(self, body: dict[str, Any], params: dict[str, str]) -> Response:
        return json_response({"status": "serving"})

    async def readyz(self, body: dict[str, Any], params: dict[str, str]) -> Response:
        answer: dict[str, object] = {"policy": self.engine.policy_hash}
        try:
            if self._inline:
                self.store.ping()
            else:
                await self._run(self.store.ping)
            answer["store"] = "ok"
        except StoreUnavailable as exc:
            answer["store"] = f"unreachable: {exc}"
        if self.last_reload is not None:
            answer["reload"] = {k: v for k, v in (
                ("result", self.last_reload.result), ("at", self.last_reload.at),
                ("policy", self.last_reload.policy), ("error", self.last_reload.error))
                if v is not None}
        ready = answer["store"] == "ok"
        answer = {"status": "ready" if ready else "unavailable", **answer}
        return json_response(answer, 200 if ready else 503)

    async def render_metrics(self, body: dict[str, Any], params: dict[str, str]) -> Response:
        return Response(self.metrics.render(), media_type=Metrics.CONTENT_TYPE)

    # ---- plumbing -----------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (a store round trip, a batch) off the event loop. At the time limit
        the answer (503) does not wait for it: the work may still complete, as any request
        whose answer was lost may have."""
        return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)

    def _endpoint(self, handler: Callable[[dict[str, Any], dict[str, str]], Awaitable[Response]],
                  *, body: bool = True) -> Callable[[HTTPRequest], Awaitable[Response]]:
        """A route: the body read within the limits and parsed as a JSON object, the handler run
        within the time limit, and every failure it can have turned into its HTTP answer."""
        timeout = self.options.request_timeout

        async def endpoint(request: HTTPRequest) -> Response:
            try:
                async with asyncio.timeout(timeout):
                    value = await self._read_object(request) if body else {}
                    return await handler(value, dict(request.path_params))
            except Problem as exc:
                return exc.response()
            except TimeoutError:
                return problem_response(503, f"the request took longer than {timeout:g} s")
            except StoreUnavailable as exc:
                self.metrics.store_errors.inc()
                return problem_response(503, f"the task store cannot be reached: {exc}")
            except TaskError as exc:
                return problem_response(400, str(exc))
            except Exception:
                return defect(request.scope)

        return endpoint

    async def _read_object(self, request: HTTPRequest) -> dict[str, Any]:
        limit = self.options.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Problem(413, f"the body is larger than {limit} bytes")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Problem(413, f"the body is larger than {limit} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise Problem(400, "the client went away before sending the whole body") from None
        try:
            value = loads(b"".join(chunks).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise Problem(400, f"the body is not UTF-8 (byte {exc.start})") from None
        except JSONInputError as exc:
            raise Problem(400, exc.where("body")) from None
        if not isinstance(value, dict):
            raise Problem(400, f"the body must be a JSON object, not {_json_type(value)}")
        return value


async def _http_problem(request: HTTPRequest, exc: Exception) -> Response:
    """Starlette's own refusals (an unknown path, a wrong method) as JSON problems too."""
    assert isinstance(exc, HTTPException)
    response = problem_response(exc.status_code, exc.detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def defect(scope: Scope) -> Response:
    """The answer to a real defect of agp (never to a bad input): logged with its traceback,
    and a JSON 500 that says nothing was decided."""
    log.exception("agp serve: defect while answering %s %s", scope.get("method"),
                  scope.get("path"))
    return problem_response(500, "an internal error of agp (logged); nothing was decided")


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _fields(body: dict[str, Any], *, required: dict[str, type | tuple[type, ...]] | None = None,
            optional: dict[str, type | tuple[type, ...]] | None = None) -> None:
    """400 for a missing, mistyped or extra top-level field of a body that is not a request."""
    required, optional = required or {}, optional or {}
    problems = [f"{k}: field required" for k in required if k not in body]
    for key, value in body.items():
        expected = required.get(key) or optional.get(key)
        if expected is None:
            problems.append(f"{key}: unknown field")
        elif not isinstance(value, expected):
            kinds = expected if isinstance(expected, tuple) else (expected,)
            wanted = " or ".join(_json_type(k()) for k in kinds)
            problems.append(f"{key}: expected {wanted}, got {_json_type(value)}")
    if problems:
        raise Problem(400, "; ".join(problems))


class Guard:
    """The outermost layer: the API key, the access log, and a JSON 500 for real defects.

    A defect (an exception nothing above expected) is logged with its traceback and answered
    500 with a JSON problem; it never stops the service."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service
        key = service.options.api_key
        self.expected = f"Bearer {key}".encode() if key else None
        self.access = service.options.access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self.expected is not None and scope["path"] not in HEALTH \
                    and not self._authorised(scope):
                await problem_response(401, "an API key is required: Authorization: Bearer "
                                       "<key>")(scope, receive, sending)
            else:
                await self.app(scope, receive, sending)
        except Exception:
            if status == 0:  # else the answer has begun, and the connection is all we can end
                await defect(scope)(scope, receive, sending)
        finally:
            if self.access is not None:
                self._log(scope, status, time.perf_counter() - started)

    def _authorised(self, scope: Scope) -> bool:
        assert self.expected is not None
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self.expected)
        return False

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        assert self.access is not None
        client = scope.get("client")
        record = {"ts": _clock().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  "method": scope.get("method"), "path": scope.get("path"), "status": status,
                  "ms": round(seconds * 1000, 3),
                  "client": f"{client[0]}:{client[1]}" if client else None}
        try:
            self.access.write(json.dumps(record) + "\n")
        except (OSError, ValueError):  # a closed or full stream must not fail the request
            pass


def default_access_log() -> TextIO:
    return sys.stderr

"""A minimal typed client of `agp serve`, for Python services that prefer HTTP to embedding.

    >>> from agp.client import Client                                  # doctest: +SKIP
    >>> with Client("http://127.0.0.1:8181") as agp_service:           # doctest: +SKIP
    ...     task = agp_service.start_task({"kind": "support_ticket", "params": {"customer": "c-42"}},
    ...                                   agent="spiffe://acme.com/agents/support-bot",
    ...                                   chain=[{"principal": "user:alice", "kind": "human"}])
    ...     decision = agp_service.call(task, agent="spiffe://acme.com/agents/support-bot",
    ...                                 tool="crm.lookup", args={"customer": "c-42"})
    ...     agp_service.end_task(task)

Only the standard library: one keep-alive connection per client (a client is for one thread at
a time; make one per thread). Anything but the documented answer raises `ServiceError`, so a
caller that treats an exception as a deny fails closed.
"""

from __future__ import annotations

import http.client
import json
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

from agp.model import Decision


class ServiceError(Exception):
    """The service did not answer as documented: a problem (`status` and its JSON `problem`),
    or no answer at all (`status` 0). Never a decision: treat it as a deny."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail
        self.problem = problem or {}


class Client:
    """Calls of `agp serve` (docs/clients.md)."""

    def __init__(self, url: str = "http://127.0.0.1:8181", *, api_key: str | None = None,
                 timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL such as http://127.0.0.1:8181, got {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key is not None:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._conn: http.client.HTTPConnection | None = None

    # ---- decisions ----------------------------------------------------------------------------

    def decide(self, request: dict[str, Any]) -> Decision:
        """Decide one self-contained request (FORMATS.md's Request)."""
        return Decision.model_validate(self._post("/v1/decide", request))

    def decide_batch(self, requests: list[dict[str, Any]]) -> list[Decision]:
        """Decide many requests in one round trip; the decisions come in the same order."""
        answer = self._post("/v1/decide/batch", {"requests": requests})
        return [Decision.model_validate(d) for d in answer["decisions"]]

    # ---- tasks --------------------------------------------------------------------------------

    def start_task(self, task: dict[str, Any], agent: str | dict[str, Any],
                   chain: list[dict[str, Any]] | None = None) -> str:
        """Start a task instance (its `id` is generated when `task` has none); returns the id."""
        body: dict[str, Any] = {"task": task, "agent": agent}
        if chain is not None:
            body["chain"] = chain
        task_id: str = self._post("/v1/tasks", body, expect=201)["id"]
        return task_id

    def delegate(self, task: str, from_: str, to: str,
                 scope: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"from": from_, "to": to}
        if scope is not None:
            body["scope"] = scope
        self._post(self._task(task, "delegate"), body)

    def call(self, task: str, agent: str | dict[str, Any], tool: str,
             **fields: Any) -> Decision:
        """Decide a call in the task (`args`, `intent`, `data`, `target`, `context` as keywords);
        the call joins the task's session."""
        body = {"agent": agent, "tool": tool, **fields}
        return Decision.model_validate(self._post(self._task(task, "calls"), body))

    def observe(self, task: str, data: list[str]) -> None:
        """Add data classes that a call returned to the task's `task.seen`."""
        self._post(self._task(task, "observe"), {"data": data})

    def end_task(self, task: str) -> None:
        """End the task (idempotent): its later calls are denied and its grants revoked."""
        self._post(self._task(task, "end"), {})

    # ---- grants and health --------------------------------------------------------------------

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: `{"active": true, ...claims}` or `{"active": false}`."""
        answer: dict[str, Any] = self._post("/v1/grants/introspect", {"token": token})
        return answer

    def jwks(self) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("GET", "/.well-known/jwks.json", None, 200)
        return answer

    def ready(self) -> bool:
        """Whether the service is ready (policy loaded, store reachable)."""
        try:
            self._request("GET", "/readyz", None, 200)
        except ServiceError:
            return False
        return True

    # ---- plumbing -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @staticmethod
    def _task(task: str, what: str) -> str:
        return f"/v1/tasks/{quote(task, safe='')}/{what}"

    def _post(self, path: str, body: dict[str, Any], expect: int = 200) -> Any:
        return self._request("POST", path, json.dumps(body, allow_nan=False).encode(), expect)

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = kind(self._host, self._port, timeout=self._timeout)
        return self._conn

    def _request(self, method: str, path: str, body: bytes | None, expect: int) -> Any:
        # A kept-alive connection the server has closed fails on first use: one retry on a
        # fresh connection, and only when nothing was answered (the request was not handled).
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._connection()
            try:
                conn.request(method, self._base + path, body, self._headers)
                response = conn.getresponse()
                status, raw = response.status, response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if attempt == 2 or not reused:
                    raise ServiceError(0, f"no answer from the service: {e}") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise ServiceError(0, f"no answer from the service: {exc}") from None
        try:
            value = json.loads(raw) if raw else None
        except ValueError:
            raise ServiceError(status, "the answer is not JSON") from None
        if status != expect:
            problem = value if isinstance(value, dict) else {}
            raise ServiceError(status, str(problem.get("detail", "unexpected answer")), problem)
        return value

"""`agp serve` over real HTTP, served in this process (a uvicorn thread) for speed: every endpoint
of docs/serve.md, its status codes, and hostile bodies. tests/test_serve_process.py runs the real
command (signals, reloads, logs, concurrency); tests/test_serve_fleet.py two instances on Redis."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import EXAMPLES, SPEC, TIMEOUT, http

import agp
from agp.client import Client, ServiceError
from agp.serve import Runner, ServeOptions, bind
from agp.store import StoreUnavailable

BOT = "spiffe://acme.com/agents/support-bot"
BILLING = "spiffe://acme.com/agents/billing/eu-1"
ALICE = {"principal": "user:alice", "kind": "human"}
# A self-contained request that the policy allows at the service's clock: its task (not one
# the service keeps) started a minute before the tests, well within the task's 30m ttl.
_STARTED = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
LOOKUP = {"agent": {"id": BOT}, "tool": "crm.lookup", "args": {"customer": "c-42"},
          "target": {"host": "crm.internal", "external": False},
          "task": {"id": "t-outside", "kind": "support_ticket", "params": {"customer": "c-42"},
                   "started_at": _STARTED},
          "chain": [ALICE, {"principal": BOT, "kind": "agent"}]}
SPEC_REQUEST = json.loads((SPEC / "request.json").read_text())

Call = Callable[..., tuple[int, Any]]


class Server:
    """A service on a free port of 127.0.0.1, in a thread of this process."""

    def __init__(self, engine: agp.Engine, options: ServeOptions) -> None:
        self.runner = Runner(engine, bind("127.0.0.1", 0), options, watch=False)
        self.url = "http://127.0.0.1:%d" % self.runner.sock.getsockname()[1]
        self.service = self.runner.service
        self.thread = threading.Thread(target=self.runner.run, daemon=True)
        self.thread.start()  # the socket listens already: requests wait in its backlog

    def __call__(self, method: str, path: str, body: object = None,
                 headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return http(self.url + path, method, body, headers)

    def close(self) -> None:
        self.runner.stop()
        self.thread.join()


@pytest.fixture
def start(policy_dir: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(**options: Any) -> Server:
        server = Server(agp.load(policy_dir), ServeOptions(**options))
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def server(start: Callable[..., Server]) -> Server:
    return start()


def start_task(server: Server, **task: Any) -> str:
    status, answer = server("POST", "/v1/tasks", {
        "task": {"kind": "support_ticket", "params": {"customer": "c-42"}, **task},
        "agent": BOT, "chain": [ALICE]})
    assert status == 201, answer
    task_id: str = answer["id"]
    return task_id


def call(server: Server, task_id: str, **body: Any) -> tuple[int, Any]:
    return server("POST", f"/v1/tasks/{task_id}/calls", {
        "agent": BOT, "tool": "crm.lookup", "args": {"customer": "c-42"},
        "target": {"host": "crm.internal", "external": False}, **body})


def assert_problem(status: int, answer: Any, expected: int, *words: str) -> None:
    assert status == expected, answer
    assert answer["status"] == expected and answer["title"] and answer["type"] == "about:blank"
    for w in words:
        assert w in answer["detail"]


# ---- /v1/decide and the batch --------------------------------------------------------------------


def test_decide_answers_the_decision_of_the_engine(server: Server) -> None:
    status, answer = server("POST", "/v1/decide", LOOKUP)
    assert status == 200
    assert answer["decision"] == "allow" and answer["rules"] == ["lookups"]
    assert answer["policy"] == server.service.engine.policy_hash
    assert "grant" not in answer  # no issuer: no grant


def test_decide_replaces_now_by_the_service_clock(server: Server) -> None:
    # At its own `now` the spec's request is allowed for 240 s (FORMATS.md); at the service's
    # clock its task, started 2026-11-28T10:00Z with a 30m ttl, has expired long ago.
    status, answer = server("POST", "/v1/decide", SPEC_REQUEST)
    assert status == 200 and answer["decision"] == "deny"
    assert "task.expired" in answer["rules"]


def test_trust_request_time_keeps_now(start: Callable[..., Server]) -> None:
    status, answer = start(trust_request_time=True)("POST", "/v1/decide", SPEC_REQUEST)
    assert (status, answer["decision"], answer["ttl"], answer["rules"]) == \
        (200, "allow", 240, ["refund_small"])


@pytest.mark.parametrize("now", ["yesterday", 12, "1800-01-01T00:00:00Z", "2026-02-30T00:00:00Z"])
def test_a_bad_now_is_validated_before_it_is_replaced(server: Server, now: object) -> None:
    status, answer = server("POST", "/v1/decide", {**LOOKUP, "now": now})
    assert status == 200 and answer["rules"] == ["request.invalid"]
    assert any(e.startswith("request.invalid: now") for e in answer["errors"]), answer


@pytest.mark.parametrize("body", [{}, {"tool": 3}, {**LOOKUP, "extra": 1},
                                  {**LOOKUP, "args": [1]}, {"requests": []}])
def test_invalid_objects_are_denied_not_refused(server: Server, body: object) -> None:
    status, answer = server("POST", "/v1/decide", body)
    assert status == 200
    assert (answer["decision"], answer["rules"]) == ("deny", ["request.invalid"])


def test_batch_answers_in_order(server: Server) -> None:
    refund = {**LOOKUP, "tool": "payments.refund", "args": {"amount": 500, "customer": "c-42"}}
    requests = [LOOKUP, {"tool": 1}, [], refund]
    status, answer = server("POST", "/v1/decide/batch", {"requests": requests})
    assert status == 200
    assert [(d["decision"], d["rules"]) for d in answer["decisions"]] == [
        ("allow", ["lookups"]), ("deny", ["request.invalid"]), ("deny", ["request.invalid"]),
        ("ask", ["refund_large"])]
    assert server("POST", "/v1/decide/batch", {"requests": []}) == (200, {"decisions": []})


@pytest.mark.parametrize("body, words", [
    ({}, ["requests: field required"]),
    ({"requests": {}}, ["requests: expected an array, got an object"]),
    ({"requests": [], "x": 1}, ["x: unknown field"]),
])
def test_batch_bodies_of_the_wrong_shape_are_400(server: Server, body: object,
                                                 words: list[str]) -> None:
    assert_problem(*server("POST", "/v1/decide/batch", body), 400, *words)


# ---- tasks ---------------------------------------------------------------------------------------


def test_a_task_lives_through_its_endpoints(server: Server) -> None:
    task_id = start_task(server, id="t-1")
    assert task_id == "t-1"
    status, answer = call(server, task_id)
    assert (status, answer["decision"], answer["rules"]) == (200, "allow", ["lookups"])
    assert server("POST", f"/v1/tasks/{task_id}/delegate", {
        "from": BOT, "to": BILLING, "scope": {"tools": ["payments.refund"], "ttl": "5m"}}) \
        == (200, {})
    status, answer = call(server, task_id, agent=BILLING, tool="payments.refund",
                          args={"amount": 40, "customer": "c-42"}, target=None)
    assert (answer["decision"], answer["rules"]) == ("allow", ["refund_small"]), answer
    status, answer = call(server, task_id, agent=BILLING)
    assert (answer["decision"], answer["rules"]) == ("deny", ["delegation.scope"])
    assert server("POST", f"/v1/tasks/{task_id}/observe", {"data": ["pii"]}) == (200, {})
    assert server("POST", f"/v1/tasks/{task_id}/end", {}) == (200, {})
    assert server("POST", f"/v1/tasks/{task_id}/end", {}) == (200, {})  # idempotent
    status, answer = call(server, task_id)
    assert (status, answer["decision"], answer["rules"]) == (200, "deny", ["task.ended"])


def test_task_ids_are_generated_and_never_reused(server: Server) -> None:
    first, second = start_task(server), start_task(server)
    assert first != second
    status, answer = server("POST", "/v1/tasks", {
        "task": {"id": first, "kind": "support_ticket", "params": {"customer": "c"}},
        "agent": BOT})
    assert_problem(status, answer, 409, first)
    server("POST", f"/v1/tasks/{first}/end", {})
    status, answer = server("POST", "/v1/tasks", {
        "task": {"id": first, "kind": "support_ticket", "params": {"customer": "c"}},
        "agent": BOT})
    assert_problem(status, answer, 409)  # an ended task's id is known too


@pytest.mark.parametrize("path", ["calls", "delegate", "observe", "end"])
def test_unknown_tasks_are_404(server: Server, path: str) -> None:
    body = {"calls": LOOKUP, "delegate": {"from": BOT, "to": BILLING},
            "observe": {"data": []}, "end": {}}[path]
    assert_problem(*server("POST", f"/v1/tasks/nope/{path}", body), 404, "nope")


@pytest.mark.parametrize("body, words", [
    ({"agent": BOT}, ["task: field required"]),
    ({"task": {"kind": "support_ticket", "params": {"customer": "c"}}}, ["agent: field required"]),
    ({"task": [], "agent": BOT}, ["task: expected an object"]),
    ({"task": {"kind": "support_ticket", "params": {"customer": "c"}}, "agent": BOT,
      "chain": {}}, ["chain: expected an array"]),
    ({"task": {"kind": "support_ticket", "params": {"customer": "c"}}, "agent": BOT,
      "extra": 1}, ["extra: unknown field"]),
    ({"task": {"kind": "support_tiket", "params": {"customer": "c"}}, "agent": BOT},
     ["support_tiket", "support_ticket"]),
    ({"task": {"kind": "support_ticket", "params": 3}, "agent": BOT}, ["params"]),
    ({"task": {"id": 3, "kind": "support_ticket"}, "agent": BOT}, ["id"]),
])
def test_start_bodies_of_the_wrong_shape_are_400(server: Server, body: object,
                                                 words: list[str]) -> None:
    assert_problem(*server("POST", "/v1/tasks", body), 400, *words)


@pytest.mark.parametrize("path, body, words", [
    ("delegate", {"from": BOT}, ["to: field required"]),
    ("delegate", {"from": BOT, "to": 3}, ["to: expected a string"]),
    ("delegate", {"from": "spiffe://nobody", "to": BILLING}, ["spiffe://nobody"]),
    ("delegate", {"from": BOT, "to": BILLING, "scope": {"ttl": "soon"}}, ["scope"]),
    ("observe", {}, ["data: field required"]),
    ("observe", {"data": "pii"}, ["data: expected an array"]),
    ("observe", {"data": [], "more": 1}, ["more: unknown field"]),
    ("end", {"now": "x"}, ["now: unknown field"]),
])
def test_task_bodies_of_the_wrong_shape_are_400(server: Server, path: str, body: object,
                                                words: list[str]) -> None:
    task_id = start_task(server)
    assert_problem(*server("POST", f"/v1/tasks/{task_id}/{path}", body), 400, *words)


@pytest.mark.parametrize("body, error", [
    ({"tool": "crm.lookup"}, "agent"),
    ({"agent": BOT, "tool": "crm.lookup", "task": "other"}, "task: unknown field"),
    ({"agent": BOT, "tool": "crm.lookup", "args": [1]}, "args"),
    ({"agent": BOT, "tool": "crm.lookup", "now": "noon"}, "now"),
])
def test_invalid_calls_are_denied_request_invalid(server: Server, body: object,
                                                  error: str) -> None:
    task_id = start_task(server)
    status, answer = server("POST", f"/v1/tasks/{task_id}/calls", body)
    assert (status, answer["decision"], answer["rules"]) == (200, "deny", ["request.invalid"])
    assert any(error in e for e in answer["errors"]), answer


def test_a_kept_task_is_not_decided_through_decide(server: Server) -> None:
    task_id = start_task(server)
    request = {**LOOKUP, "task": {"id": task_id, "kind": "support_ticket",
                                  "params": {"customer": "c-42"}}}
    for status, answer in [server("POST", "/v1/decide", request),
                           (200, server("POST", "/v1/decide/batch",
                                        {"requests": [request]})[1]["decisions"][0])]:
        assert (status, answer["decision"], answer["rules"]) == (200, "deny", ["request.invalid"])
        assert "/v1/tasks/{id}/calls" in answer["errors"][0]


# ---- hostile bodies ------------------------------------------------------------------------------

POSTS = ["/v1/decide", "/v1/decide/batch", "/v1/tasks", "/v1/tasks/t/delegate",
         "/v1/tasks/t/calls", "/v1/tasks/t/observe", "/v1/tasks/t/end", "/v1/grants/introspect"]
HOSTILE: list[bytes | str] = [
    b"", b"   ", b"[]", b"null", b"3", b'"x"', b"nan", b'{"a": NaN}', b'{"a": Infinity}',
    b'{"a": 1e999}', b"[" * 100_000, b'{"a":' * 50_000, b"\xff\xfe", b'{"a": 1,}',
    b'{"a": 1, "a": 2}', b'{"tool": "\\ud800"}', b"{" + b'"k": 1,' * 10 + b"}",
    '{"agent": {"id": "\u0000"}, "tool": "t"}', b'{"requests": [[[[[]]]]]}',
    b'{"task": {"kind": "support_ticket", "params": {"customer": "c"}}, "agent": {"id": 1}}',
    b'{"requests": [' + b'{"tool": 1},' * 1000 + b'{}]}', b"1" * 5000,
]


def test_hostile_bodies_are_never_a_500(server: Server) -> None:
    server("POST", "/v1/tasks", {"task": {"id": "t", "kind": "support_ticket",
                                          "params": {"customer": "c"}}, "agent": BOT})
    for path in POSTS:
        for body in HOSTILE:
            status, answer = server("POST", path, body)
            assert status in (200, 201, 400, 404, 409, 413, 501), (path, body[:40], answer)
            if status != 200 or path not in ("/v1/decide", "/v1/tasks/t/calls"):
                continue
            assert answer["decision"] == "deny"
    assert server("GET", "/healthz")[0] == 200


@pytest.mark.parametrize("body", [b"[]", b"3", b"null", b'"x"', b"{", b"\xff"])
@pytest.mark.parametrize("path", POSTS)
def test_a_body_that_is_not_an_object_is_a_400_problem(server: Server, path: str,
                                                       body: bytes) -> None:
    assert_problem(*server("POST", path, body), 400)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["agent", "tool", "task", "args", "now", "id", "kind", "params", "data",
                         "from", "to", "scope", "requests", "token", "chain", "x"]) | st.text(
            max_size=5), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(POSTS), value=json_values | st.binary(max_size=64))
def test_generated_bodies_are_never_a_500(server: Server, path: str, value: object) -> None:
    status, answer = server("POST", path, value)
    assert status in (200, 201, 400, 404, 409, 413, 501), (path, value, answer)
    if status == 200 and path in ("/v1/decide", "/v1/tasks/t/calls"):
        assert answer["decision"] != "allow" or isinstance(value, dict)


def test_a_body_over_the_limit_is_413(start: Callable[..., Server]) -> None:
    server = start(max_body_bytes=1000)
    assert_problem(*server("POST", "/v1/decide", {**LOOKUP, "pad": "x" * 2000}), 413, "1000")
    assert server("POST", "/v1/decide", LOOKUP)[0] == 200


def test_a_body_that_never_comes_is_cut_off(start: Callable[..., Server]) -> None:
    server = start(request_timeout=0.2)
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        answer = sock.makefile("rb").readline()
    assert answer.startswith(b"HTTP/1.1 503"), answer


def test_work_over_the_time_limit_is_answered_503(start: Callable[..., Server],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    server = start(request_timeout=0.2)
    task_id = start_task(server)
    release = threading.Event()
    monkeypatch.setattr(server.service.tasks, "end", lambda task: release.wait(TIMEOUT))
    try:
        assert_problem(*server("POST", f"/v1/tasks/{task_id}/end", {}), 503, "0.2 s")
        assert server("GET", "/healthz")[0] == 200  # the stuck work holds nothing else up
    finally:
        release.set()


def test_a_defect_is_a_json_500_and_the_service_goes_on(server: Server,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.service, "_decide_one", broken)
    assert_problem(*server("POST", "/v1/decide", LOOKUP), 500, "nothing was decided")
    monkeypatch.undo()
    assert server("POST", "/v1/decide", LOOKUP)[1]["decision"] == "allow"


# ---- access ----------------------------------------------------------------------------------------


def test_the_api_key_guards_all_but_health(start: Callable[..., Server]) -> None:
    server = start(api_key="s3cret")
    for method, path, body in [("POST", "/v1/decide", LOOKUP), ("GET", "/metrics", None),
                               ("POST", "/v1/tasks/t/end", {}),
                               ("GET", "/.well-known/jwks.json", None)]:
        assert_problem(*server(method, path, body), 401, "Bearer")
        assert_problem(*server(method, path, body, {"Authorization": "Bearer wrong"}), 401)
    ok = {"Authorization": "Bearer s3cret"}
    assert server("POST", "/v1/decide", LOOKUP, ok)[1]["decision"] == "allow"
    assert server("GET", "/healthz")[0] == 200 and server("GET", "/readyz")[0] == 200


def test_unknown_paths_and_methods_are_json_problems(server: Server) -> None:
    assert_problem(*server("GET", "/v1/nothing"), 404)
    assert_problem(*server("GET", "/v1/decide"), 405)
    assert_problem(*server("POST", "/healthz", {}), 405)


# ---- operations ----------------------------------------------------------------------------------


def test_metrics_count_decisions_reloads_and_latency(server: Server) -> None:
    server("POST", "/v1/decide", LOOKUP)
    server("POST", "/v1/decide/batch", {"requests": [LOOKUP, {}]})
    status, text = server("GET", "/metrics")
    assert status == 200
    assert 'agp_decisions_total{decision="allow"} 2.0' in text
    assert 'agp_decisions_total{decision="deny"} 1.0' in text
    assert 'agp_decision_rules_total{decision="allow",rule="lookups"} 2.0' in text
    assert "agp_decision_seconds_count 3.0" in text
    assert 'agp_reloads_total{result="error"} 0.0' in text
    assert "agp_store_errors_total 0.0" in text


def test_a_reload_that_fails_keeps_the_old_set(server: Server, policy_dir: Path) -> None:
    old = server.service.engine.policy_hash
    (policy_dir / "support.agp").write_text("permit broken on\n")
    server.runner.reload()
    status, ready = server("GET", "/readyz")
    assert status == 200 and ready["policy"] == old
    assert ready["reload"]["result"] == "error" and "support.agp" in ready["reload"]["error"]
    assert server("POST", "/v1/decide", LOOKUP)[1]["decision"] == "allow"
    shutil.copy(EXAMPLES / "customer-support" / "support.agp", policy_dir / "support.agp")
    with (policy_dir / "support.agp").open("a") as f:
        f.write("\nforbid no_lookups on crm.lookup\n")
    server.runner.reload()
    status, ready = server("GET", "/readyz")
    assert ready["reload"]["result"] == "ok" and ready["policy"] != old
    assert server("POST", "/v1/decide", LOOKUP)[1]["rules"] == ["no_lookups"]
    metrics = server("GET", "/metrics")[1]
    assert 'agp_reloads_total{result="error"} 1.0' in metrics
    assert 'agp_reloads_total{result="ok"} 1.0' in metrics


def test_store_unreachable(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    task_id = start_task(server)

    def down(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("connection refused")

    store = server.service.store
    for name in ("ping", "task", "create_task", "delegate", "end_task", "observe", "append"):
        monkeypatch.setattr(store, name, down)
    status, ready = server("GET", "/readyz")
    assert status == 503 and "connection refused" in ready["store"]
    assert server("GET", "/healthz")[0] == 200
    status, answer = call(server, task_id)
    assert (status, answer["decision"], answer["rules"]) == (200, "deny", ["store.unavailable"])
    for path, body in [("/v1/tasks", {"task": {"kind": "support_ticket",
                                              "params": {"customer": "c"}}, "agent": BOT}),
                       (f"/v1/tasks/{task_id}/end", {}),
                       (f"/v1/tasks/{task_id}/observe", {"data": []}),
                       (f"/v1/tasks/{task_id}/delegate", {"from": BOT, "to": BILLING})]:
        assert_problem(*server("POST", path, body), 503, "store")
    kept = {**LOOKUP, "task": {**LOOKUP["task"], "id": task_id}}
    for request in (kept, LOOKUP):  # whether a task is kept cannot be known: denied
        status, answer = server("POST", "/v1/decide", request)
        assert (status, answer["decision"], answer["rules"]) == \
            (200, "deny", ["store.unavailable"])
    no_task = {k: v for k, v in LOOKUP.items() if k not in ("task", "chain")}
    assert server("POST", "/v1/decide", no_task)[1]["rules"] == ["default.deny"]
    assert "agp_store_errors_total 7.0" in server("GET", "/metrics")[1]
    monkeypatch.undo()
    assert server("GET", "/readyz")[0] == 200
    assert call(server, task_id)[1]["decision"] == "allow"


# ---- the Python client ---------------------------------------------------------------------------


def test_the_python_client(start: Callable[..., Server]) -> None:
    server = start(api_key="k")
    with Client(server.url, api_key="k") as client:
        assert client.ready()
        assert client.decide(LOOKUP).decision == "allow"
        assert [d.decision for d in client.decide_batch([LOOKUP, {}])] == ["allow", "deny"]
        task = client.start_task({"kind": "support_ticket", "params": {"customer": "c-42"}},
                                 agent=BOT, chain=[ALICE])
        assert client.call(task, agent=BOT, tool="crm.lookup", args={"customer": "c-42"},
                           target={"host": "crm", "external": False}).rules == ["lookups"]
        client.delegate(task, BOT, BILLING, {"tools": ["payments.refund"]})
        assert client.call(task, agent=BILLING, tool="payments.refund",
                           args={"amount": 40, "customer": "c-42"}).allowed
        client.observe(task, ["pii"])
        client.end_task(task)
        client.end_task(task)
        assert client.call(task, agent=BOT, tool="crm.lookup").rules == ["task.ended"]
        with pytest.raises(ServiceError) as refused:
            client.end_task("nope")
        assert refused.value.status == 404 and "nope" in refused.value.detail
    with Client(server.url) as client, pytest.raises(ServiceError) as refused:
        client.decide(LOOKUP)
    assert refused.value.status == 401
    with Client("http://127.0.0.1:1") as client:
        assert not client.ready()
        with pytest.raises(ServiceError) as refused:
            client.decide(LOOKUP)
        assert refused.value.status == 0


def test_the_client_refuses_what_is_not_a_url() -> None:
    with pytest.raises(ValueError):
        Client("127.0.0.1:8181")

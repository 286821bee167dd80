"""`agp serve` as a real process: the command line, reloads on SIGHUP and on file change, the access
and decision logs, a graceful shutdown, the API key file, and many concurrent clients."""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support import TIMEOUT, Served, poll_until

from agp.cli import main
from agp.client import Client

BOT = "spiffe://acme.com/agents/support-bot"
ALICE = {"principal": "user:alice", "kind": "human"}
TASK = {"kind": "support_ticket", "params": {"customer": "c-42"}}
LOOKUP = {"args": {"customer": "c-42"}, "target": {"host": "crm.internal", "external": False}}
FORBID = "\nforbid no_lookups on crm.lookup\n"


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def serve(*args: str | Path, env: dict[str, str] | None = None) -> Served:
        started.append(Served(*map(str, args), env=env))
        return started[-1]

    yield serve
    for s in started:
        s.stop(signal.SIGKILL)


def lookup(server: Served, task: str) -> dict[str, Any]:
    status, answer = server("POST", f"/v1/tasks/{task}/calls",
                            {"agent": BOT, "tool": "crm.lookup", **LOOKUP})
    assert status == 200, answer
    result: dict[str, Any] = answer
    return result


def start_task(server: Served) -> str:
    status, answer = server("POST", "/v1/tasks", {"task": TASK, "agent": BOT, "chain": [ALICE]})
    assert status == 201, answer
    task_id: str = answer["id"]
    return task_id


def test_serves_on_localhost_and_logs_each_request(serve: Callable[..., Served],
                                                   policy_dir: Path) -> None:
    server = serve("-p", policy_dir)
    assert server.url.startswith("http://127.0.0.1:")
    assert lookup(server, start_task(server))["rules"] == ["lookups"]
    assert server("GET", "/healthz") == (200, {"status": "serving"})
    assert server.stop() == 0
    records = [json.loads(line) for line in server.lines if line.startswith("{")]
    assert [(r["method"], r["path"], r["status"]) for r in records][:3] == [
        ("POST", "/v1/tasks", 201), ("POST", f"/v1/tasks/{records[1]['path'].split('/')[3]}"
                                              "/calls", 200), ("GET", "/healthz", 200)]
    assert all(isinstance(r["ms"], float) and r["client"].startswith("127.0.0.1:")
               for r in records)
    assert "agp serve: stopped" in server.stderr


def test_sighup_reloads_and_a_broken_set_keeps_the_old_one(serve: Callable[..., Served],
                                                           policy_dir: Path) -> None:
    server = serve("-p", policy_dir)
    task = start_task(server)
    first = server("GET", "/readyz")[1]["policy"]
    with (policy_dir / "support.agp").open("a") as f:
        f.write(FORBID)
    server.proc.send_signal(signal.SIGHUP)
    poll_until(lambda: server("GET", "/readyz")[1]["policy"] != first, "the new set serves")
    assert lookup(server, task)["rules"] == ["no_lookups"]  # the task lives on across reloads
    second = server("GET", "/readyz")[1]["policy"]

    (policy_dir / "support.agp").write_text("permit broken on\n")
    server.proc.send_signal(signal.SIGHUP)
    status, ready = poll_until(lambda: (lambda a: a if a[1].get("reload", {}).get("result") == "error"
                                   else None)(server("GET", "/readyz")), "the reload fails")
    assert status == 200 and ready["status"] == "ready" and ready["policy"] == second
    assert "support.agp:1" in ready["reload"]["error"]
    assert lookup(server, task)["rules"] == ["no_lookups"]
    assert "reload refused" in server.stderr
    metrics = server("GET", "/metrics")[1]
    assert 'agp_reloads_total{result="ok"} 1.0' in metrics
    assert 'agp_reloads_total{result="error"} 1.0' in metrics


def test_a_changed_file_reloads_by_itself(serve: Callable[..., Served],
                                          policy_dir: Path) -> None:
    server = serve("-p", policy_dir)
    task = start_task(server)
    assert lookup(server, task)["decision"] == "allow"
    with (policy_dir / "support.agp").open("a") as f:
        f.write(FORBID)
    # The service polls its files every 0.5 s (agp.serve.run.WATCH_INTERVAL): within 2 s.
    poll_until(lambda: lookup(server, task)["rules"] == ["no_lookups"], "the edit is served")
    (policy_dir / "new.agp").write_text("permit oops on\n")  # a file added, broken
    poll_until(lambda: server("GET", "/readyz")[1].get("reload", {}).get("result") == "error",
          "the broken file is refused")
    assert lookup(server, task)["rules"] == ["no_lookups"]


def test_shutdown_drains_requests_in_flight_and_flushes_the_decision_log(
        serve: Callable[..., Served], policy_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    server = serve("-p", policy_dir, "--decision-log", log)
    task = start_task(server)
    for _ in range(20):
        lookup(server, task)
    port = int(server.url.rsplit(":", 1)[1])
    body = json.dumps({"agent": BOT, "tool": "crm.lookup", **LOOKUP}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        # A request in flight: the service has begun to read its body (it answered `100
        # Continue`) when the shutdown begins, and the body comes after.
        sock.sendall(b"POST /v1/tasks/%s/calls HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                     b"Expect: 100-continue\r\n\r\n" % (task.encode(), len(body)))
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"HTTP/1.1 100")
        assert reader.readline() == b"\r\n"
        server.proc.send_signal(signal.SIGTERM)
        sock.sendall(body)
        answer = reader.read()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["decision"] == "allow"
    assert server.proc.wait(TIMEOUT) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()
             if line and not line.startswith("//")]
    assert len(lines) == 21
    assert all(r["event"] == "request" and r["expect"]["decision"] == "allow" for r in lines)


def test_the_api_key_file(serve: Callable[..., Served], policy_dir: Path,
                          tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k-123\n")
    server = serve("-p", policy_dir, "--api-key-file", key)
    assert server("POST", "/v1/tasks", {"task": TASK, "agent": BOT})[0] == 401
    assert server("GET", "/metrics")[0] == 401
    assert server("GET", "/healthz")[0] == 200 and server("GET", "/readyz")[0] == 200
    status, _ = server("POST", "/v1/tasks", {"task": TASK, "agent": BOT},
                       {"Authorization": "Bearer k-123"})
    assert status == 201


def test_many_concurrent_clients(serve: Callable[..., Served], policy_dir: Path) -> None:
    server = serve("-p", policy_dir, "--no-access-log")
    clients, per_client = 16, 125  # 2,000 decisions

    def work(n: int) -> list[str]:
        with Client(server.url) as client:
            task = client.start_task(TASK, agent=BOT, chain=[ALICE])
            out = []
            for i in range(per_client):
                if i % 2:
                    out.append(client.call(task, agent=BOT, tool="crm.lookup", **LOOKUP).decision)
                else:
                    out.append(client.decide_batch([{"agent": {"id": BOT},
                                                     "tool": "crm.lookup"}])[0].decision)
            return out

    with ThreadPoolExecutor(clients) as pool:
        results = [d for batch in pool.map(work, range(clients)) for d in batch]
    assert len(results) == clients * per_client
    allowed = clients * (per_client // 2)  # the calls in a task; the others have none
    assert results.count("allow") == allowed == 992
    metrics = server("GET", "/metrics")[1]
    assert f'agp_decisions_total{{decision="allow"}} {allowed}.0' in metrics
    assert f'agp_decisions_total{{decision="deny"}} {2000 - allowed}.0' in metrics


@pytest.mark.parametrize("args, status, message", [
    (["-p", "no/such/dir"], 2, "no/such/dir"),
    (["-p", "{bad}"], 1, "does not load"),
    (["-p", "{good}", "--api-key-file", "no/such/key"], 2, "API key file"),
    (["-p", "{good}", "--store", "mysql://x"], 2, "unknown store"),
    (["-p", "{good}", "--host", "256.0.0.1"], 2, "cannot listen"),
])
def test_bad_usage(args: list[str], status: int, message: str, tmp_path: Path,
                   policy_dir: Path) -> None:
    bad = tmp_path / "bad.agp"
    bad.write_text("permit broken on\n")
    args = [a.format(bad=bad, good=policy_dir) for a in args]
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == status, result.output
    assert message in result.output


def test_decisions_are_traced_when_an_otlp_endpoint_is_set(serve: Callable[..., Served],
                                                           policy_dir: Path) -> None:
    pytest.importorskip("opentelemetry.sdk")
    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    try:
        server = serve("-p", policy_dir, env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}"})
        lookup(server, start_task(server))
        assert server("GET", "/healthz")[0] == 200
        assert server.stop() == 0  # the shutdown flushes the spans
    finally:
        collector.shutdown()
    spans = b"".join(body for path, body in received if path == "/v1/traces")
    assert b"agp.decide" in spans and b"lookups" in spans and b"agp-serve" in spans
    assert b"c-42" not in spans  # arguments stay out of traces

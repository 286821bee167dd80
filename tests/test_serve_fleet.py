"""Two `agp serve` processes sharing one real Redis (IDENTITY.md §4 as docs/serve.md states it):
a task started on one is decided and ended on the other, grants minted by one are introspected
and revoked by the other, and Redis going away denies and comes back without a restart."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import EXAMPLES, RedisServer, Served, poll_until

from agp.identity.keys import generate

BOT = "spiffe://acme.com/agents/support-bot"
ALICE = {"principal": "user:alice", "kind": "human"}
TASK = {"kind": "support_ticket", "params": {"customer": "c-42"}}
LOOKUP = {"agent": BOT, "tool": "crm.lookup", "args": {"customer": "c-42"},
          "target": {"host": "crm.internal", "external": False}}


@pytest.fixture
def fleet(redis_url: str, tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    policy = tmp_path / "policy"
    shutil.copytree(EXAMPLES / "customer-support", policy)
    key = tmp_path / "issuer.jwk"
    key.write_text(json.dumps(generate()))
    args = ["-p", str(policy), "--store", redis_url, "--issuer-key", str(key),
            "--issuer", "agp://test/pdp", "--no-access-log"]
    one, two = Served(*args), Served(*args)
    yield one, two
    for s in (one, two):
        s.stop(signal.SIGKILL)


def test_a_task_started_on_one_is_decided_and_ended_on_the_other(
        fleet: tuple[Served, Served]) -> None:
    one, two = fleet
    status, answer = one("POST", "/v1/tasks", {"task": TASK, "agent": BOT, "chain": [ALICE]})
    assert status == 201
    task = answer["id"]
    status, decision = two("POST", f"/v1/tasks/{task}/calls", LOOKUP)
    assert (status, decision["decision"], decision["rules"]) == (200, "allow", ["lookups"])
    grant = decision["grant"]
    assert one("POST", "/v1/grants/introspect", {"token": grant})[1]["active"] is True
    assert one("GET", "/.well-known/jwks.json") == two("GET", "/.well-known/jwks.json")
    assert one("GET", "/.well-known/jwks.json")[1]["keys"][0]["kty"] == "OKP"

    # Known on both: a second start is 409 on the other, and /v1/decide refuses it on either.
    status, _ = two("POST", "/v1/tasks", {"task": {**TASK, "id": task}, "agent": BOT})
    assert status == 409
    request = {**LOOKUP, "agent": {"id": BOT}, "task": {**TASK, "id": task}}
    assert one("POST", "/v1/decide", request)[1]["rules"] == ["request.invalid"]

    assert two("POST", f"/v1/tasks/{task}/observe", {"data": ["pii"]}) == (200, {})
    assert one("POST", f"/v1/tasks/{task}/end", {}) == (200, {})
    assert two("POST", f"/v1/tasks/{task}/end", {}) == (200, {})
    assert two("POST", f"/v1/tasks/{task}/calls", LOOKUP)[1]["rules"] == ["task.ended"]
    assert two("POST", "/v1/grants/introspect", {"token": grant}) == (200, {"active": False})
    assert one("POST", "/v1/tasks/nope/end", {})[0] == 404


def test_calls_from_both_instances_join_one_session(fleet: tuple[Served, Served]) -> None:
    one, two = fleet
    task = one("POST", "/v1/tasks", {"task": TASK, "agent": BOT, "chain": [ALICE]})[1]["id"]
    for i in range(10):
        server = (one, two)[i % 2]
        assert server("POST", f"/v1/tasks/{task}/calls", LOOKUP)[1]["decision"] == "allow"
    decided = sum(float(line.split()[-1]) for s in (one, two)
                  for line in s("GET", "/metrics")[1].splitlines()
                  if line.startswith('agp_decisions_total{decision="allow"}'))
    assert decided == 10


def test_redis_going_away_denies_and_coming_back_recovers(
        fleet: tuple[Served, Served], redis_server: RedisServer) -> None:
    one, two = fleet
    task = one("POST", "/v1/tasks", {"task": TASK, "agent": BOT, "chain": [ALICE]})[1]["id"]
    redis_server.stop()
    try:
        status, ready = one("GET", "/readyz")
        assert status == 503 and ready["status"] == "unavailable"
        assert one("GET", "/healthz")[0] == 200
        status, decision = two("POST", f"/v1/tasks/{task}/calls", LOOKUP)
        assert (status, decision["decision"], decision["rules"]) == \
            (200, "deny", ["store.unavailable"])
        assert "grant" not in decision
        status, problem = one("POST", "/v1/tasks", {"task": TASK, "agent": BOT})
        assert status == 503 and "store" in problem["detail"]
        assert one("POST", f"/v1/tasks/{task}/end", {})[0] == 503
        assert two("POST", "/v1/grants/introspect", {"token": "x.y.z"}) == \
            (200, {"active": False})
        assert "agp_store_errors_total 0.0" not in one("GET", "/metrics")[1]
    finally:
        redis_server.start()
    poll_until(lambda: one("GET", "/readyz")[0] == 200 and two("GET", "/readyz")[0] == 200,
          "both instances are ready again")
    assert two("POST", f"/v1/tasks/{task}/calls", LOOKUP)[1]["decision"] == "allow"

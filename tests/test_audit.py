"""The decision log: complete, masked, rotated, replayable, and shadow mode."""

import json
import threading

import pytest
from support import SPEC

import agp
from agp.audit import DecisionLog, digest

REQUEST = json.loads((SPEC / "request.json").read_text())


@pytest.fixture(scope="module")
def engine():
    return agp.load(SPEC)


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_every_decision_is_written_as_a_replayable_request_event(engine, tmp_path):
    log = DecisionLog(tmp_path / "d.log", mask=["args.customer"])
    decision = engine.decide(REQUEST)
    log.record(REQUEST, decision)
    log.close()
    [record] = lines(tmp_path / "d.log")
    assert record["event"] == "request"
    assert record["expect"] == {"decision": "allow", "ttl": 240, "rules": ["refund_small"]}
    assert record["request"]["args"] == {"amount": 40, "customer": "***"}
    assert record["audit"] == {"policy": decision.policy, "digest": digest(REQUEST),
                               "masked": ["args.customer"]}


def test_without_the_request_only_its_digest_is_kept(engine, tmp_path):
    log = DecisionLog(tmp_path / "d.log", include_request=False)
    log.record(REQUEST, engine.decide(REQUEST))
    log.close()
    [record] = lines(tmp_path / "d.log")
    assert "request" not in record and record["audit"]["digest"].startswith("sha256:")


def test_no_record_is_lost_from_many_threads(engine, tmp_path):
    log = DecisionLog(tmp_path / "d.log")
    decision = engine.decide(REQUEST)

    def work(n):
        for i in range(250):
            log.record({**REQUEST, "context": {"thread": n, "i": i}}, decision)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    seen = {(r["request"]["context"]["thread"], r["request"]["context"]["i"])
            for r in lines(tmp_path / "d.log")}
    assert len(seen) == 8 * 250


def test_rotation_by_size_keeps_every_record(engine, tmp_path):
    log = DecisionLog(tmp_path / "d.log", max_bytes=2000, backups=50)
    decision = engine.decide(REQUEST)
    for i in range(40):
        log.record({**REQUEST, "context": {"i": i}}, decision)
    log.close()
    files = sorted(tmp_path.glob("d.log*"))
    assert len(files) > 1
    assert all(f.stat().st_size <= 2000 for f in files)
    got = sorted(r["request"]["context"]["i"] for f in files for r in lines(f))
    assert got == list(range(40))


def test_shadow_mode_logs_differences_without_changing_decisions(engine, tmp_path, write_policy):
    strict = agp.load(write_policy((SPEC / "declarations.agp").read_text()
                                   + "forbid no_refunds on payments.refund\n"))
    differences = []
    log = DecisionLog(tmp_path / "d.log")
    log.shadow(strict.decide, lambda req, enforced, candidate: differences.append(candidate))
    enforced = engine.decide(REQUEST)
    log.record(REQUEST, enforced)
    log.close()
    assert enforced.decision == "allow"
    records = lines(tmp_path / "d.log")
    assert [r["event"] for r in records] == ["request", "shadow"]
    assert records[1]["candidate"]["rules"] == ["no_refunds"]
    assert [d.decision for d in differences] == ["deny"]

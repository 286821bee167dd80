"""Hot reload, file watching and concurrent decisions (issue 7)."""

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from support import SPEC

import agp
from agp.engine import Engine, ReferenceEvaluator

REQUEST = json.loads((SPEC / "request.json").read_text())
DECLS = (SPEC / "declarations.agp").read_text()
RULES = (SPEC / "rules.agp").read_text()


@pytest.fixture
def policy_dir(tmp_path):
    (tmp_path / "decls.agp").write_text(DECLS)
    (tmp_path / "rules.agp").write_text(RULES)
    return tmp_path


def test_reload_swaps_the_policy_set(policy_dir):
    engine = agp.load(policy_dir)
    before = engine.decide(REQUEST)
    (policy_dir / "extra.agp").write_text("forbid no_refunds on payments.refund\n")
    engine.reload()
    after = engine.decide(REQUEST)
    assert (before.decision, after.decision) == ("allow", "deny")
    assert before.policy != after.policy == engine.policy_hash


def test_a_broken_set_leaves_the_old_one_serving(policy_dir):
    engine = agp.load(policy_dir)
    good = engine.policy_hash
    (policy_dir / "broken.agp").write_text("permit oops when args.amount >\n")
    with pytest.raises(agp.PolicyError) as info:
        engine.reload()
    assert any(str(d.span).endswith("broken.agp:1:31") for d in info.value.diagnostics)
    assert engine.policy_hash == good
    assert engine.decide(REQUEST).decision == "allow"


def test_a_decision_in_flight_finishes_on_its_own_set(policy_dir):
    started, release = threading.Event(), threading.Event()

    class Slow(ReferenceEvaluator):
        def decide(self, request, *, task_ended=False):
            started.set()
            release.wait(timeout=30)
            return super().decide(request, task_ended=task_ended)

    old = agp.load(policy_dir).policy
    engine = Engine(old, paths=policy_dir, evaluator=Slow(old))
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("d", engine.decide(REQUEST)))
    t.start()
    started.wait(timeout=30)
    (policy_dir / "extra.agp").write_text("forbid no_refunds on payments.refund\n")
    engine.reload()
    release.set()
    t.join()
    assert result["d"].policy == old.hash and result["d"].decision == "allow"
    assert engine.decide(REQUEST).decision == "deny"


def test_watch_reloads_on_change_and_reports_refusals(policy_dir):
    engine = agp.load(policy_dir)
    reloaded, refused = [], []
    watcher = engine.watch(interval=3600, on_reload=reloaded.append, on_error=refused.append)
    try:
        assert watcher.check_now() is False
        (policy_dir / "extra.agp").write_text("forbid no_refunds on payments.refund\n")
        assert watcher.check_now() is True
        assert engine.decide(REQUEST).decision == "deny" and len(reloaded) == 1
        (policy_dir / "extra.agp").write_text("forbid no_refunds on\n")
        watcher.check_now()
        assert len(refused) == 1 and engine.decide(REQUEST).decision == "deny"
    finally:
        engine.close()


def _mixed_requests(n: int) -> list[dict]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        r = json.loads(json.dumps(REQUEST))
        r["args"]["amount"] = rng.choice([10, 100, 101, 5000, "x"])
        r["now"] = f"2026-11-28T10:0{rng.randint(1, 9)}:00Z"
        if i % 7 == 0:
            r["chain"] = r["chain"][:2]
        if i % 11 == 0:
            r["data"] = ["restricted"]
            r["tool"] = "http.get"
        out.append(r)
    return out


@pytest.mark.parametrize("compiled", [True, False])
def test_sixteen_threads_agree_with_a_sequential_run(compiled):
    engine = agp.load(SPEC, compiled=compiled)
    requests = _mixed_requests(800)
    sequential = [engine.decide(r) for r in requests]
    with ThreadPoolExecutor(max_workers=16) as pool:
        threaded = list(pool.map(engine.decide, requests))
    assert threaded == sequential
    assert {d.decision for d in sequential} >= {"allow", "deny", "ask"}


def test_logged_requests_carry_their_decision_time(tmp_path):
    engine = agp.load(SPEC, decision_log=tmp_path / "d.log")
    request = {k: v for k, v in REQUEST.items() if k != "now"}
    request["task"] = {k: v for k, v in request["task"].items() if k != "started_at"}
    request["task"]["kind"] = "nope"
    engine.decide(request)
    engine.close()
    [line] = (tmp_path / "d.log").read_text().splitlines()
    logged = json.loads(line)["request"]
    assert logged["now"].endswith("Z") and "now" not in request

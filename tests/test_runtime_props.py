"""Property: replaying a generated trace decides every call exactly as building its Request by
hand (FORMATS.md's table of events, sessions included: LANGUAGE.md §6) and calling
`Engine.decide` does."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import SPEC

import agp

ENGINE = agp.load([str(SPEC / "declarations.agp"), str(SPEC / "rules.agp")])
AGENTS = ["spiffe://acme.com/agents/support-bot", "spiffe://acme.com/agents/billing/eu-1",
          "spiffe://acme.com/agents/billing/eu-2", "spiffe://acme.com/agents/other"]
TOOLS = ["crm.lookup", "payments.refund", "http.get", "http.post", "crm.notes"]
TASKS = ["t-1", "t-2"]
# What each tool's declarations add to a call (tests/data/spec/declarations.agp), as a history
# item records them: sorted, declared names only.
LABELS = {"crm.lookup": (["read"], ["pii"]), "payments.refund": (["payment", "write"], ["pii"]),
          "http.get": (["egress"], []), "http.post": (["egress"], []), "crm.notes": ([], [])}
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)

scopes = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "tools": st.lists(st.sampled_from(["payments.refund", "crm.*", "http.*"]), max_size=2),
    "intents": st.lists(st.sampled_from(["read", "write", "payment", "egress"]), max_size=3),
    "ttl": st.sampled_from(["1m", "5m", 600]),
}))
steps = st.lists(st.one_of(
    st.tuples(st.just("task.start"), st.sampled_from(TASKS), st.sampled_from(AGENTS[:2]),
              st.sampled_from(["support_ticket", "nope"]), st.sampled_from(["c-1", "c-2"])),
    st.tuples(st.just("delegate"), st.sampled_from(TASKS), st.sampled_from(AGENTS),
              st.sampled_from(AGENTS), scopes),
    st.tuples(st.just("call"), st.sampled_from(TASKS + [None]), st.sampled_from(AGENTS),
              st.sampled_from(TOOLS), st.integers(0, 300), st.sampled_from(["c-1", "c-2"]),
              st.sampled_from([None, False, True])),
    st.tuples(st.just("task.end"), st.sampled_from(TASKS)),
), max_size=25)
gaps = st.lists(st.integers(0, 400), min_size=25, max_size=25)


def ts(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(steps, gaps)
def test_replay_agrees_with_hand_built_requests(tmp_path, plan, waits):
    lines, expected = [], {}  # expected: line number -> Decision
    tasks: dict[str, dict] = {}  # the test's own model of the task state
    now = T0
    for number, (step, wait) in enumerate(zip(plan, waits, strict=False), 1):
        now += timedelta(seconds=wait)
        kind = step[0]
        if kind == "task.start":
            _, tid, agent, task_kind, customer = step
            lines.append({"ts": ts(now), "event": kind,
                          "task": {"id": tid, "kind": task_kind, "params": {"customer": customer}},
                          "agent": agent, "chain": [{"principal": "user:alice", "kind": "human"}]})
            if tid not in tasks:  # a known id, even ended, is a problem: one id, one instance
                root = [{"principal": "user:alice", "kind": "human"},
                        {"principal": agent, "kind": "agent"}]
                tasks[tid] = {"task": {"id": tid, "kind": task_kind,
                                       "params": {"customer": customer},
                                       "started_at": ts(now)},
                              "root": root, "chains": {agent: root}, "ended": False,
                              "seen": [], "history": []}
        elif kind == "delegate":
            _, tid, src, dst, scope = step
            event = {"ts": ts(now), "event": kind, "task": tid, "from": src, "to": dst}
            if scope is not None:
                event["scope"] = scope
            lines.append(event)
            if tid in tasks and src in tasks[tid]["chains"]:
                hop = {"principal": dst, "kind": "agent", "at": ts(now)}
                if scope is not None:
                    hop["scope"] = scope
                tasks[tid]["chains"][dst] = tasks[tid]["chains"][src] + [hop]
        elif kind == "call":
            _, tid, agent, tool, amount, customer, external = step
            event = {"ts": ts(now), "event": kind, "agent": agent, "tool": tool,
                     "args": {"amount": amount, "customer": customer}}
            if tid is not None:
                event["task"] = tid
            if external is not None:
                event["target"] = {"host": "h.example", "external": external}
            lines.append(event)
            if tid is not None and tid not in tasks:
                continue  # reported as a problem, not decided
            request = {"agent": {"id": agent}, "tool": tool, "args": event["args"],
                       "now": ts(now)}
            if "target" in event:
                request["target"] = event["target"]
            ended = False
            if tid is not None:
                state = tasks[tid]
                request["task"] = {**state["task"], "seen": list(state["seen"]),
                                   "history": list(state["history"])}
                request["chain"] = state["chains"].get(agent, state["root"])
                ended = state["ended"]
            decision = expected[number] = ENGINE.decide(json.loads(json.dumps(request)),
                                                        task_ended=ended)
            if tid is not None and not ended and "request.invalid" not in decision.rules:
                intents, classes = LABELS[tool]
                state["history"].append({"tool": tool, "intent": intents, "data": classes,
                                         "args": event["args"], "decision": decision.decision,
                                         "at": ts(now)})
                if decision.decision != "deny":
                    state["seen"] += [c for c in classes if c not in state["seen"]]
        else:
            _, tid = step
            lines.append({"ts": ts(now), "event": kind, "task": tid})
            if tid in tasks:
                tasks[tid]["ended"] = True
    path = tmp_path / "gen.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    got = {o.line: o.decision for o in agp.replay_trace(ENGINE, path) if o.problem is None}
    assert got == expected

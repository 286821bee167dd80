"""LANGUAGE.md §5 step 2: every row of the envelope table, and which checks a task-less request skips.

Every case runs through both evaluators: each has its own envelope (agp.envelope's rows in the
reference, agp.compile.envelope in the compiled one).
"""

from __future__ import annotations

import pytest
from support import DATA

import agp

BOT = "spiffe://t/bot"
HELPER_A = "spiffe://t/helper/a"
HELPER_B = "spiffe://t/helper/b"
OTHER = "spiffe://t/other"
NOW = "2026-11-28T10:00:00Z"


def human(p="user:alice"):
    return {"principal": p, "kind": "human"}


def hop(p, **extra):
    return {"principal": p, "kind": "agent", **extra}


def req(tool="docs.read", agent=BOT, task=None, chain=None, now=NOW, **extra):
    r = {"agent": {"id": agent}, "tool": tool, "now": now}
    if task is not None:
        r["task"] = task
    if chain is not None:
        r["chain"] = chain
    r.update(extra)
    return r


def scoped(started_at=NOW, **extra):
    t = {"id": "t-1", "kind": "scoped", **extra}
    if started_at is not None:
        t["started_at"] = started_at
    return t


@pytest.fixture(scope="module", params=["compiled", "reference"])
def engine(request):
    return agp.load(str(DATA / "envelope.agp"), compiled=request.param == "compiled")


def assert_allowed(d):
    assert d.decision == "allow", (d.rules, d.errors)
    assert list(d.rules) == ["everything"]


def assert_denied_by(d, code, *absent):
    assert d.decision == "deny", d.rules
    assert code in d.rules, d.rules
    assert d.ttl == 0
    for other in absent:
        assert other not in d.rules, d.rules


# --- Controls: the fixture allows what the envelope does not stop. ---

def test_control_no_task(engine):
    assert_allowed(engine.decide(req()))


def test_control_scoped_task(engine):
    assert_allowed(engine.decide(req(task=scoped(), chain=[human(), hop(BOT)])))


def test_control_task_without_ttl_needs_no_started_at(engine):
    assert_allowed(engine.decide(req(task={"kind": "open"}, chain=[human(), hop(BOT)])))


# --- request.invalid: the documented shape, strictly. ---

def _mutate(path, value):
    def apply(r):
        target = r
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return r
    return apply


_DELETE = object()

FULL = {
    "agent": {"id": BOT, "attrs": {"model": "m"}},
    "task": {"id": "t-1", "kind": "open", "params": {}, "objective": "o", "started_at": NOW},
    "chain": [human(), hop(BOT, at=NOW, scope={"tools": ["docs.*"], "intents": ["read"],
                                              "data": "pii", "ttl": "5m"})],
    "tool": "docs.read",
    "intent": ["read"],
    "args": {},
    "data": ["internal"],
    "target": {"host": "h", "external": False},
    "context": {},
    "now": NOW,
}

INVALID = {
    "extra top-level field": _mutate(["tol"], "docs.read"),
    "extra agent field": _mutate(["agent", "name"], "x"),
    "extra task field": _mutate(["task", "owner"], "x"),
    "extra hop field": _mutate(["chain", 1, "role"], "x"),
    "extra scope field": _mutate(["chain", 1, "scope", "tool"], "x"),
    "missing agent": _mutate(["agent"], _DELETE),
    "missing agent.id": _mutate(["agent", "id"], _DELETE),
    "missing tool": _mutate(["tool"], _DELETE),
    "tool not a string": _mutate(["tool"], 5),
    "agent.id not a string": _mutate(["agent", "id"], 5),
    "intent not a list": _mutate(["intent"], "read"),
    "data not a list": _mutate(["data"], "internal"),
    "chain not a list": _mutate(["chain"], {}),
    "args not an object": _mutate(["args"], []),
    "context not an object": _mutate(["context"], "x"),
    "hop without principal": _mutate(["chain", 0, "principal"], _DELETE),
    "hop without kind": _mutate(["chain", 0, "kind"], _DELETE),
    "task without kind": _mutate(["task", "kind"], _DELETE),
    "now not a timestamp": _mutate(["now"], "yesterday"),
    "now without zone": _mutate(["now"], "2026-11-28T10:00:00"),
    "started_at not a timestamp": _mutate(["task", "started_at"], "soon"),
    "hop at not a timestamp": _mutate(["chain", 1, "at"], 12),
    "scope ttl not a duration": _mutate(["chain", 1, "scope", "ttl"], "10min"),
    "scope ttl negative": _mutate(["chain", 1, "scope", "ttl"], -5),
    "scope tools not a list": _mutate(["chain", 1, "scope", "tools"], "docs.*"),
    # Hop kinds are exactly human, agent, service.
    "hop kind capitalised": _mutate(["chain", 1, "kind"], "Agent"),
    "hop kind unknown": _mutate(["chain", 1, "kind"], "robot"),
    "hop kind padded": _mutate(["chain", 0, "kind"], "human "),
    # A tool name is not empty and has no whitespace or control characters.
    "tool empty": _mutate(["tool"], ""),
    "tool with a space": _mutate(["tool"], "docs. read"),
    "tool with a control character": _mutate(["tool"], "docs.read\x00"),
    # Values within the bounds of a decision's arithmetic (docs/limits.md, "Values").
    "now at the upper time bound": _mutate(["now"], "9000-01-01T00:00:00Z"),
    "now past the calendar in UTC": _mutate(["now"], "9999-12-31T23:00:00-01:00"),
    "started_at before 1900": _mutate(["task", "started_at"], "1899-12-31T23:59:59Z"),
    "hop at before year 1 in UTC": _mutate(["chain", 1, "at"], "0001-01-01T00:30:00+01:00"),
    "scope ttl beyond the duration bound": _mutate(["chain", 1, "scope", "ttl"], "36501d"),
    "scope ttl of 1e20 seconds": _mutate(["chain", 1, "scope", "ttl"], 1e20),
    "args NaN": _mutate(["args", "x"], float("nan")),
    "args infinity": _mutate(["args", "x"], float("inf")),
    "args integer too large for a float": _mutate(["args", "x"], 10**400),
    "attrs NaN deep inside": _mutate(["agent", "attrs", "model"], [{"x": float("-inf")}]),
}


def test_full_request_is_valid(engine):
    assert_allowed(engine.decide(_copy(FULL)))


def _copy(obj):
    import copy

    return copy.deepcopy(obj)


@pytest.mark.parametrize("mutation", list(INVALID), ids=list(INVALID))
def test_request_invalid(engine, mutation):
    request = INVALID[mutation](_copy(FULL))
    request["context"] = request["context"] if not isinstance(request.get("context"), dict) \
        else {"flag": True}
    d = engine.decide(request)
    assert d.decision == "deny"
    assert d.ttl == 0
    # A request that does not validate is denied with request.invalid alone: no rule ran.
    assert list(d.rules) == ["request.invalid"]
    assert d.errors, "the validation messages are reported"


def test_free_form_objects_accept_any_keys(engine):
    request = _copy(FULL)
    request["agent"]["attrs"] = {"anything": {"nested": [1, 2]}, "x": None}
    request["task"]["params"] = {"whatever": 1}
    request["args"] = {"a": 1, "b": {"c": "d"}}
    request["target"] = {"host": "h", "port": 443, "extra": True}
    request["context"] = {"k": "v"}
    assert_allowed(engine.decide(request))


def test_only_agent_id_and_tool_required(engine):
    assert_allowed(engine.decide({"agent": {"id": BOT}, "tool": "docs.read", "now": NOW}))


def test_hop_scope_ttl_without_at(engine):
    d = engine.decide(req(chain=[human(), hop(BOT, scope={"ttl": "5m"})]))
    assert_denied_by(d, "request.invalid")


def test_hop_scope_ttl_without_at_still_evaluates_rules(engine):
    d = engine.decide(req(chain=[human(), hop(BOT, scope={"ttl": "5m"})], context={"flag": 1}))
    assert_denied_by(d, "request.invalid")
    assert "flagged" in d.rules
    assert list(d.reasons) == ["flagged"]


def test_hop_scope_without_ttl_needs_no_at(engine):
    assert_allowed(engine.decide(req(chain=[human(), hop(BOT, scope={"tools": ["docs.*"]})])))


def test_missing_started_at_when_task_has_ttl(engine):
    d = engine.decide(req(task=scoped(started_at=None), chain=[human(), hop(BOT)]))
    assert_denied_by(d, "request.invalid")


# --- request.unknown ---

def test_unknown_data_class(engine):
    assert_denied_by(engine.decide(req(data=["nonexistent"])), "request.unknown")


def test_unknown_intent(engine):
    assert_denied_by(engine.decide(req(intent=["teleport"])), "request.unknown")


def test_known_labels_are_fine(engine):
    assert_allowed(engine.decide(req(intent=["read"], data=["public"])))


def test_unknown_label_with_unknown_task(engine):
    d = engine.decide(req(task={"kind": "nope"}, data=["nonexistent"]))
    assert_denied_by(d, "request.unknown")
    assert "task.unknown" in d.rules


# --- task.unknown ---

def test_task_unknown(engine):
    assert_denied_by(engine.decide(req(task={"kind": "nope"})), "task.unknown")


# --- task.expired, at the exact boundary ---

def test_task_expired_at_boundary(engine):
    d = engine.decide(req(task=scoped(), chain=[human(), hop(BOT)], now="2026-11-28T10:10:00Z"))
    assert_denied_by(d, "task.expired")


def test_task_expired_after(engine):
    d = engine.decide(req(task=scoped(), chain=[human(), hop(BOT)], now="2026-11-28T11:00:00Z"))
    assert_denied_by(d, "task.expired")


def test_task_not_expired_one_second_before(engine):
    d = engine.decide(req(task=scoped(), chain=[human(), hop(BOT)], now="2026-11-28T10:09:59Z"))
    assert_allowed(d)
    assert d.ttl == 1


# --- task.ended ---

def test_task_ended(engine):
    r = req(task={"id": "t-1", "kind": "open"}, chain=[human(), hop(BOT)])
    assert_allowed(engine.decide(r))
    assert_denied_by(engine.decide(r, task_ended=True), "task.ended")


# --- scope.* ---

def test_scope_tool(engine):
    d = engine.decide(req(tool="wiki.read", task=scoped(), chain=[human(), hop(BOT)]))
    assert_denied_by(d, "scope.tool", "scope.intent", "scope.data")


def test_scope_tool_undeclared_tool(engine):
    d = engine.decide(req(tool="shell.run", task=scoped(), chain=[human(), hop(BOT)]))
    assert_denied_by(d, "scope.tool")


def test_scope_intent_from_tool(engine):
    d = engine.decide(req(tool="docs.write", task=scoped(), chain=[human(), hop(BOT)]))
    assert_denied_by(d, "scope.intent", "scope.tool", "scope.data")


def test_scope_intent_from_request(engine):
    d = engine.decide(req(intent=["delete"], task=scoped(), chain=[human(), hop(BOT)]))
    assert_denied_by(d, "scope.intent", "scope.tool", "scope.data")


def test_scope_data_from_request(engine):
    d = engine.decide(req(data=["pii"], task=scoped(), chain=[human(), hop(BOT)]))
    assert_denied_by(d, "scope.data", "scope.tool", "scope.intent")


def test_scope_data_from_tool(engine):
    d = engine.decide(req(tool="docs.secret", task=scoped(), chain=[human(), hop(BOT)]))
    assert_denied_by(d, "scope.data", "scope.tool", "scope.intent")


def test_scope_data_below_ceiling(engine):
    assert_allowed(engine.decide(req(data=["public"], task=scoped(), chain=[human(), hop(BOT)])))


def test_omitted_task_clauses_restrict_nothing(engine):
    d = engine.decide(req(tool="net.fetch", intent=["delete"], data=["secret"],
                          task={"kind": "open"}, chain=[human(), hop(BOT)]))
    assert_allowed(d)


# --- delegation.mismatch ---

def test_delegation_mismatch(engine):
    d = engine.decide(req(agent=OTHER, chain=[human(), hop(BOT)]))
    assert_denied_by(d, "delegation.mismatch")


def test_delegation_mismatch_with_task(engine):
    d = engine.decide(req(agent=OTHER, task={"kind": "open"}, chain=[human(), hop(BOT)]))
    assert_denied_by(d, "delegation.mismatch")


def test_delegation_mismatch_is_exact_not_glob(engine):
    # The last hop names the pattern of `helper`, not the acting agent's id.
    d = engine.decide(req(agent=HELPER_A, chain=[human(), hop("spiffe://t/helper/*")]))
    assert_denied_by(d, "delegation.mismatch")


def test_empty_chain_is_no_mismatch(engine):
    assert_allowed(engine.decide(req(agent=OTHER, chain=[])))


# --- delegation.cycle ---

def test_delegation_cycle(engine):
    chain = [human(), hop(BOT), hop(HELPER_A), hop(BOT)]
    assert_denied_by(engine.decide(req(chain=chain)), "delegation.cycle")


def test_delegation_cycle_through_human(engine):
    chain = [human(), hop(BOT), human(), hop(HELPER_A)]
    assert_denied_by(engine.decide(req(agent=HELPER_A, chain=chain)), "delegation.cycle")


# --- delegation.depth ---

def test_depth_one_without_delegate(engine):
    assert_allowed(engine.decide(req(task={"kind": "open"}, chain=[human(), hop(BOT)])))


def test_depth_two_without_delegate(engine):
    chain = [human(), hop(BOT), hop(HELPER_A)]
    d = engine.decide(req(agent=HELPER_A, task={"kind": "open"}, chain=chain))
    assert_denied_by(d, "delegation.depth")
    # "no hop may follow the first agent" either.
    assert "delegation.to" in d.rules


def test_depth_within_delegate(engine):
    chain = [human(), hop(BOT), hop(HELPER_A)]
    assert_allowed(engine.decide(req(agent=HELPER_A, task={"kind": "deleg"}, chain=chain)))


def test_depth_beyond_delegate(engine):
    chain = [human(), hop(BOT), hop(HELPER_A), hop(HELPER_B)]
    d = engine.decide(req(agent=HELPER_B, task={"kind": "deleg"}, chain=chain))
    assert_denied_by(d, "delegation.depth", "delegation.to")


def test_delegate_without_to_allows_any_agent(engine):
    chain = [human(), hop(BOT), hop(HELPER_A), hop(OTHER)]
    assert_allowed(engine.decide(req(agent=OTHER, task={"kind": "deep_any"}, chain=chain)))


def test_delegate_without_to_depth_limit(engine):
    chain = [human(), hop(BOT), hop(HELPER_A), hop(HELPER_B), hop(OTHER)]
    d = engine.decide(req(agent=OTHER, task={"kind": "deep_any"}, chain=chain))
    assert_denied_by(d, "delegation.depth", "delegation.to")


# --- delegation.to ---

def test_delegation_to(engine):
    chain = [human(), hop(BOT), hop(OTHER)]
    d = engine.decide(req(agent=OTHER, task={"kind": "deleg"}, chain=chain))
    assert_denied_by(d, "delegation.to", "delegation.depth")


def test_delegation_to_does_not_restrict_first_agent(engine):
    chain = [human(), hop(OTHER), hop(HELPER_A)]
    assert_allowed(engine.decide(req(agent=HELPER_A, task={"kind": "deleg"}, chain=chain)))


def test_first_agent_is_first_hop_of_kind_agent(engine):
    # Human hops before it do not count as the first agent; the hop after it must be in `to`.
    chain = [human(), human("user:bob"), hop(BOT), hop(OTHER)]
    d = engine.decide(req(agent=OTHER, task={"kind": "deleg"}, chain=chain))
    assert_denied_by(d, "delegation.to")


# --- delegation.scope ---

@pytest.mark.parametrize(
    "scope",
    [{"tools": ["docs.write"]}, {"intents": ["write"]}, {"data": "public"},
     {"tools": ["wiki.*", "net.*"]}],
    ids=["tools", "intents", "data", "tool-globs"],
)
def test_delegation_scope_violation(engine, scope):
    d = engine.decide(req(chain=[human(), hop(BOT, scope=scope)]))
    assert_denied_by(d, "delegation.scope")


@pytest.mark.parametrize(
    "scope",
    [{"tools": ["docs.*"]}, {"tools": ["wiki.read", "docs.read"]}, {"intents": ["read", "write"]},
     {"data": "internal"}, {"data": "pii"}, {}],
    ids=["glob", "list", "intents", "data-equal", "data-above", "empty"],
)
def test_delegation_scope_fits(engine, scope):
    assert_allowed(engine.decide(req(chain=[human(), hop(BOT, scope=scope)])))


def test_delegation_scope_request_intent_counts(engine):
    d = engine.decide(req(intent=["write"], chain=[human(), hop(BOT, scope={"intents": ["read"]})]))
    assert_denied_by(d, "delegation.scope")


def test_delegation_scope_of_earlier_hop(engine):
    chain = [human(), hop(BOT, scope={"tools": ["wiki.read"]}), hop(HELPER_A)]
    assert_denied_by(engine.decide(req(agent=HELPER_A, chain=chain)), "delegation.scope")


# --- delegation.expired ---

def test_delegation_expired_at_boundary(engine):
    chain = [human(), hop(BOT, at=NOW, scope={"ttl": "5m"})]
    d = engine.decide(req(chain=chain, now="2026-11-28T10:05:00Z"))
    assert_denied_by(d, "delegation.expired")


def test_delegation_expired_numeric_ttl(engine):
    chain = [human(), hop(BOT, at=NOW, scope={"ttl": 300})]
    d = engine.decide(req(chain=chain, now="2026-11-28T10:05:00Z"))
    assert_denied_by(d, "delegation.expired")


def test_delegation_not_expired_before(engine):
    chain = [human(), hop(BOT, at=NOW, scope={"ttl": "5m"})]
    d = engine.decide(req(chain=chain, now="2026-11-28T10:04:59Z"))
    assert_allowed(d)
    assert d.ttl == 1


def test_delegation_expired_earlier_hop(engine):
    chain = [human(), hop(BOT, at=NOW, scope={"ttl": "1m"}), hop(HELPER_A, at=NOW)]
    d = engine.decide(req(agent=HELPER_A, chain=chain, now="2026-11-28T10:02:00Z"))
    assert_denied_by(d, "delegation.expired")


# --- A request without a task skips task.*, scope.*, delegation.depth and delegation.to only. ---

LONG_CHAIN = [human(), hop(BOT), hop(HELPER_A), hop(HELPER_B), hop(OTHER)]


def test_no_task_skips_depth_and_to(engine):
    assert_allowed(engine.decide(req(agent=OTHER, chain=LONG_CHAIN)))


def test_no_task_skips_task_state(engine):
    assert_allowed(engine.decide(req(), task_ended=True))


def test_unknown_task_skips_scope_depth_and_to(engine):
    d = engine.decide(req(agent=OTHER, tool="net.fetch", data=["secret"],
                          task={"kind": "nope"}, chain=LONG_CHAIN))
    assert_denied_by(d, "task.unknown", "delegation.depth", "delegation.to",
                      "scope.tool", "scope.intent", "scope.data", "task.expired")


@pytest.mark.parametrize("task", [None, {"kind": "nope"}], ids=["no-task", "unknown-task"])
@pytest.mark.parametrize(
    "case",
    ["mismatch", "cycle", "scope", "expired", "unknown"],
)
def test_no_task_still_checks_the_rest(engine, task, case):
    chain = [human(), hop(BOT), hop(HELPER_A), hop(OTHER)]
    agent, extra = OTHER, {}
    if case == "mismatch":
        agent = BOT
    elif case == "cycle":
        chain = chain + [hop(BOT)]
        agent = BOT
    elif case == "scope":
        chain[1] = hop(BOT, scope={"tools": ["wiki.*"]})
    elif case == "expired":
        chain[2] = hop(HELPER_A, at="2026-11-28T09:00:00Z", scope={"ttl": "5m"})
    elif case == "unknown":
        extra = {"intent": ["teleport"]}
    d = engine.decide(req(agent=agent, task=task, chain=chain, **extra))
    code = "request.unknown" if case == "unknown" else f"delegation.{case}"
    assert_denied_by(d, code, "delegation.depth", "delegation.to")


# --- Rules run even when the envelope fails; the explanation lists both. ---

def test_envelope_and_forbid_both_listed(engine):
    d = engine.decide(req(data=["nonexistent"], context={"flag": 1}))
    assert d.decision == "deny"
    assert "request.unknown" in d.rules
    assert "flagged" in d.rules
    assert "everything" not in d.rules
    assert list(d.reasons) == ["flagged"]


def test_envelope_codes_precede_forbids(engine):
    d = engine.decide(req(agent=OTHER, chain=[human(), hop(BOT)], context={"flag": 1}))
    assert list(d.rules) == ["delegation.mismatch", "flagged"]


def test_envelope_codes_in_table_order(engine):
    chain = [human(), hop(BOT, scope={"tools": ["wiki.*"]}), hop(HELPER_A), hop(OTHER)]
    d = engine.decide(req(agent=OTHER, tool="wiki.read", task=scoped(), chain=chain,
                          now="2026-11-28T10:20:00Z"))
    assert list(d.rules) == ["task.expired", "scope.tool", "delegation.depth", "delegation.to"]


# --- Further cases read literally from the table ---

def test_unknown_task_skips_task_ended(engine):
    d = engine.decide(req(task={"kind": "nope"}), task_ended=True)
    assert_denied_by(d, "task.unknown", "task.ended")


def test_ask_with_envelope_failure_is_deny():
    from support import load_text

    e = load_text("""
    import std.intents
    ask a because "human"
    permit p
    """)
    d = e.decide(req(intent=["teleport"]))
    assert (d.decision, list(d.rules), d.ttl) == ("deny", ["request.unknown"], 0)
    assert list(d.reasons) == []


def test_human_hop_after_first_agent_must_match_to(engine):
    # "a hop after the first agent matches none of the task's `delegate to` agents"
    chain = [human(), hop(BOT), human("user:bob"), hop(HELPER_A)]
    d = engine.decide(req(agent=HELPER_A, task={"kind": "deleg"}, chain=chain))
    assert_denied_by(d, "delegation.to")


def test_hop_scope_unknown_class_is_unknown(engine):
    d = engine.decide(req(chain=[human(), hop(BOT, scope={"data": "nonexistent"})]))
    assert_denied_by(d, "request.unknown")


def test_hop_scope_unknown_intent_is_unknown(engine):
    d = engine.decide(req(chain=[human(), hop(BOT, scope={"intents": ["teleport"]})]))
    assert_denied_by(d, "request.unknown")


def test_depth_counts_hand_offs_not_agents(engine):
    # [alice, bot] has depth 1 even though one hop is human: the `open` task allows exactly that.
    assert_allowed(engine.decide(req(task={"kind": "open"}, chain=[human(), hop(BOT)])))
    # An agent acting without any origin hop: depth 0.
    assert_allowed(engine.decide(req(task={"kind": "open"}, chain=[hop(BOT)])))


# --- The first agent is the first hop that is not human (kind `service` included). ---

def test_service_hop_is_the_first_agent(engine):
    chain = [human(), {"principal": OTHER, "kind": "service"}, hop(BOT)]
    d = engine.decide(req(task={"kind": "deleg"}, chain=chain))
    assert_denied_by(d, "delegation.to")


def test_hop_after_a_service_may_be_a_delegate(engine):
    chain = [human(), {"principal": OTHER, "kind": "service"}, hop(HELPER_A)]
    assert_allowed(engine.decide(req(agent=HELPER_A, task={"kind": "deleg"}, chain=chain)))


# --- Nothing starts, and nothing is delegated, in the future. ---

def test_started_at_later_than_now_is_invalid(engine):
    d = engine.decide(req(task=scoped(started_at="2026-11-28T10:00:01Z"),
                          chain=[human(), hop(BOT)], context={"flag": 1}))
    assert_denied_by(d, "request.invalid")
    assert "flagged" in d.rules  # an envelope failure: the rules still ran
    assert d.errors == ["request.invalid: task.started_at: 2026-11-28T10:00:01Z is later than "
                        "now; nothing starts in the future"]


def test_hop_at_later_than_now_is_invalid(engine):
    d = engine.decide(req(chain=[human(), hop(BOT, at="2026-11-28T11:00:00+00:30")]))
    assert_denied_by(d, "request.invalid")
    assert d.errors == ["request.invalid: chain[1].at: 2026-11-28T10:30:00Z is later than now; "
                        "nothing is delegated in the future"]


def test_times_at_now_are_not_in_the_future(engine):
    assert_allowed(engine.decide(req(task=scoped(started_at=NOW),
                                     chain=[human(), hop(BOT, at=NOW)])))


def test_semantic_request_invalid_says_why(engine):
    d = engine.decide(req(task=scoped(started_at=None), chain=[human(), hop(BOT, scope={
        "ttl": "5m"})]))
    assert d.errors == [
        "request.invalid: chain[1]: a hop whose scope has a `ttl` needs `at`",
        "request.invalid: task.started_at: task `scoped` has a `ttl`, so the request must say "
        "when the task started"]


# --- request.unknown and task.unknown name what is unknown. ---

def test_request_unknown_names_the_labels(engine):
    d = engine.decide(req(data=["secrett"], intent=["read", "teleport"]))
    assert (d.rules, d.errors) == (["request.unknown"], [
        "request.unknown: data class `secrett` is not declared",
        "request.unknown: intent `teleport` is not declared"])


def test_request_unknown_names_hop_scope_labels(engine):
    d = engine.decide(req(chain=[human(), hop(BOT, scope={"data": "nonexistent"})]))
    assert d.errors == ["request.unknown: data class `nonexistent` is not declared"]


def test_task_unknown_names_the_kind(engine):
    d = engine.decide(req(task={"kind": "nope"}))
    assert (d.rules, d.errors) == (["task.unknown"],
                                   ["task.unknown: task kind `nope` is not declared"])


# --- The table as code: one function per row, named after its code, in the order of §5. ---

TABLE = ("request.invalid", "request.unknown", "task.unknown", "task.expired", "task.ended",
         "scope.tool", "scope.intent", "scope.data", "delegation.mismatch", "delegation.cycle",
         "delegation.depth", "delegation.to", "delegation.scope", "delegation.expired",
         "identity.invalid", "identity.mismatch", "identity.missing", "store.unavailable",
         "session.full")


def test_the_rows_are_the_table_in_order():
    from agp import envelope

    assert envelope.CODES == TABLE
    assert [row.__name__ for _, row in envelope.ROWS] == [c.replace(".", "_") for c in TABLE]

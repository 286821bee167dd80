"""LANGUAGE.md §5 step 2, the envelope: one function per row of its table, and the table.

Each row is named after its code and says, as plainly as the spec's sentence, whether a call
fails the check. It reads the call as `Facts`: the request resolved against the policy (step 1)
and what is known of the task's state. The three rows whose code alone does not say what to fix
(`request.invalid`, `request.unknown`, `task.unknown`) return the messages for the decision's
`errors` instead of True (none: the check passes).

The reference evaluator (agp.interp) runs every row (`check`). The compiled evaluator computes the
codes with its own, specialised envelope (agp.compile.envelope) and comes here only for the
messages of the checks it found failed (`explain`): the differential test then compares two
implementations of the envelope.

The rows of IDENTITY.md (`identity.invalid`, `identity.mismatch`, `identity.missing`,
`store.unavailable`) and `session.full` (LANGUAGE.md §6) read what the decision learnt besides the
request: the `Identity` the engine's identity check established (agp.identity), and whether the
task store could be reached.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from agp.glob import compile_glob
from agp.identity import Identity, IdentityCheck
from agp.limits import MAX_MATCH_WORK, MAX_SESSION_CALLS
from agp.model import HistoryEntry, session_summary
from agp.values import EvalError

if TYPE_CHECKING:
    from agp.policy import Policy, TaskInfo


# ---- what the rows read ---------------------------------------------------------------------------
# A validated request as the envelope and the TTL read it: agp.model.Request, or the compiled
# evaluator's lighter copy of it (agp.compile.request), which has the same attributes. What the
# two type differently (a hop kind's Literal, lists of either's hops) is read-only here.


class AgentView(Protocol):
    id: str | None  # as asserted: the decision's agent id is Facts.identity.id
    svid: str | None


class TaskView(Protocol):
    kind: str
    started_at: datetime | None

    @property
    def seen(self) -> Sequence[str]: ...
    @property
    def history(self) -> Sequence[HistoryEntry]: ...


class ScopeView(Protocol):
    tools: list[str] | None
    intents: list[str] | None
    data: str | None
    ttl: timedelta | None


class HopView(Protocol):
    principal: str
    at: datetime | None

    @property
    def kind(self) -> str: ...
    @property
    def scope(self) -> ScopeView | None: ...


class RequestView(Protocol):
    tool: str
    intent: list[str]
    data: list[str]

    @property
    def agent(self) -> AgentView: ...
    @property
    def task(self) -> TaskView | None: ...
    @property
    def chain(self) -> Sequence[HopView]: ...


@dataclass(frozen=True, slots=True)
class Facts:
    """One call as the envelope sees it: resolved against the policy (§5 step 1), with the
    state of its task."""

    policy: Policy
    request: RequestView
    now: datetime
    task: TaskInfo | None  # the declaration named by `task.kind`; None when absent or unknown
    intents: frozenset[str]  # the request's intents and those of the tools it matches
    data: frozenset[str]  # likewise for data classes
    identity: Identity  # who the agent is (agp.identity): its id is the decision's `agent.id`
    task_ended: bool = False  # known from a trace replay or the task runtime
    store_unavailable: bool = False  # the task store could not be read or written

    @property
    def started_at(self) -> datetime | None:
        task = self.request.task
        return None if task is None else task.started_at


# ---- the rows, in the order of the table ------------------------------------------------------------
# A request without a task, or whose task is unknown, skips the other `task.*` rows and the
# `scope.*`, `delegation.depth` and `delegation.to` rows: each of them passes when `task` is None.


def request_invalid(c: Facts) -> list[str]:
    """The request does not have the documented shape. agp.model validates the shape before any
    step; what is left are the checks that need `now` or the task's declaration: a hop whose
    scope has a `ttl` needs `at`, a task whose declaration has a `ttl` needs `started_at`, and
    nothing is delegated or started later than `now`."""
    out = []
    for i, hop in enumerate(c.request.chain):
        if hop.at is None:
            if hop.scope is not None and hop.scope.ttl is not None:
                out.append(f"request.invalid: chain[{i}]: a hop whose scope has a `ttl` needs `at`")
        elif hop.at > c.now:
            out.append(f"request.invalid: chain[{i}].at: {_iso(hop.at)} is later than now; "
                       "nothing is delegated in the future")
    task, started = c.request.task, c.started_at
    if task is not None and started is None and c.task is not None and c.task.ttl is not None:
        out.append(f"request.invalid: task.started_at: task `{task.kind}` has a `ttl`, so the "
                   "request must say when the task started")
    if started is not None and started > c.now:
        out.append(f"request.invalid: task.started_at: {_iso(started)} is later than now; "
                   "nothing starts in the future")
    if task is not None and task.history:
        latest = session_summary(task.history).latest
        if latest is not None and latest > c.now:
            # (the item, unless the history's summary is all that says so)
            first = next((i for i, h in enumerate(task.history) if h.at > c.now), None)
            where = "task.history" if first is None else f"task.history[{first}].at"
            late = latest if first is None else task.history[first].at
            out.append(f"request.invalid: {where}: {_iso(late)} is later than now; a session "
                       "holds only earlier calls")
    return out


def request_unknown(c: Facts) -> list[str]:
    """It names a data class or intent that the policy set does not declare, in `data`,
    `intent`, a hop's scope or the task's session (`task.seen`, a history item's `data` and
    `intent`): one message per such label."""
    classes, intents = list(c.request.data), list(c.request.intent)
    for hop in c.request.chain:
        if hop.scope is not None:
            if hop.scope.data is not None:
                classes.append(hop.scope.data)
            intents.extend(hop.scope.intents or ())
    task = c.request.task
    if task is not None:
        classes.extend(task.seen)
        if task.history:
            summary = session_summary(task.history)
            classes.extend(sorted(summary.classes))
            intents.extend(sorted(summary.intents))
    declared_classes, declared_intents = c.policy.lattice.below, c.policy.intents
    return [*(f"request.unknown: data class `{n}` is not declared"
              for n in dict.fromkeys(classes) if n not in declared_classes),
            *(f"request.unknown: intent `{n}` is not declared"
              for n in dict.fromkeys(intents) if n not in declared_intents)]


def task_unknown(c: Facts) -> list[str]:
    """`task.kind` names no declared task."""
    task = c.request.task
    if task is None or c.task is not None:
        return []
    return [f"task.unknown: task kind `{task.kind}` is not declared"]


def task_expired(c: Facts) -> bool:
    """`now` >= task start + task `ttl`; compared as the elapsed time `now - start` against the
    `ttl`, since the sum can leave the calendar."""
    task, started = c.task, c.started_at
    return (task is not None and task.ttl is not None and started is not None
            and c.now - started >= task.ttl)


def task_ended(c: Facts) -> bool:
    """The task was ended earlier (traces and the runtime know this)."""
    return c.task is not None and c.task_ended


def scope_tool(c: Facts) -> bool:
    """The tool matches none of the task's `tools`."""
    task = c.task
    return (task is not None and task.tools is not None
            and not any(g.match(c.request.tool) for g in task.tools))


def scope_intent(c: Facts) -> bool:
    """An intent of the call is not among the task's `intents`."""
    task = c.task
    return task is not None and task.intents is not None and not c.intents <= task.intents


def scope_data(c: Facts) -> bool:
    """`data <= ceiling` does not hold."""
    task = c.task
    return task is not None and task.ceiling is not None and not within(c, task.ceiling)


def delegation_mismatch(c: Facts) -> bool:
    """The chain is not empty and its last hop is not the acting agent (compared exactly)."""
    chain = c.request.chain
    return bool(chain) and chain[-1].principal != c.identity.id


def delegation_cycle(c: Facts) -> bool:
    """A principal appears twice in the chain."""
    principals = [hop.principal for hop in c.request.chain]
    return len(set(principals)) != len(principals)


def delegation_depth(c: Facts) -> bool:
    """`chain.depth` exceeds the task's `delegate` depth (TaskInfo.depth is 1 without `delegate`,
    None for no limit)."""
    task = c.task
    return task is not None and task.depth is not None and chain_depth(c.request.chain) > task.depth


def delegation_to(c: Facts) -> bool:
    """A hop after the first agent matches none of the task's `delegate to` agents. Without a
    `delegate` block no hop may follow the first agent; `delegate` without `to` allows any."""
    task = c.task
    if task is None:
        return False
    later = after_first_agent(c.request.chain)
    if not task.delegate:
        return bool(later)
    to = task.delegate_to
    return to is not None and any(not any(g.match(hop.principal) for g in to) for hop in later)


def delegation_scope(c: Facts) -> bool:
    """The call is outside the scope that some hop attenuated to: a call must fit every hop's
    scope, so a delegation can only narrow what the delegator had."""
    return any(hop.scope is not None and not fits(c, hop.scope) for hop in c.request.chain)


def delegation_expired(c: Facts) -> bool:
    """Some hop's scope `ttl` has run out: `now >= at + ttl`, compared as elapsed time."""
    return any(hop.scope is not None and hop.scope.ttl is not None and hop.at is not None
               and c.now - hop.at >= hop.scope.ttl for hop in c.request.chain)


def _identity(code: str) -> Row:
    def row(c: Facts) -> list[str]:
        ident = c.identity
        return [ident.error or code] if ident.code == code else []

    row.__name__ = row.__qualname__ = code.replace(".", "_")  # a row is named after its code
    row.__doc__ = f"IDENTITY.md §1: the identity check refused the agent with `{code}`; its " \
                  "message says what failed (never the token)."
    return row


identity_invalid = _identity("identity.invalid")
identity_mismatch = _identity("identity.mismatch")
identity_missing = _identity("identity.missing")


def store_unavailable(c: Facts) -> bool:
    """The task's state cannot be read or written (the caller of `decide` knows: IDENTITY.md §4)."""
    return c.store_unavailable


def session_full(c: Facts) -> list[str]:
    """The task's session has reached its bound (LANGUAGE.md §6, agp.limits.MAX_SESSION_CALLS):
    the call is never decided on a truncated history."""
    task = c.request.task
    if task is None or len(task.history) < MAX_SESSION_CALLS:
        return []
    return [f"session.full: the task's history holds {len(task.history):,} calls, the most a "
            f"session may hold ({MAX_SESSION_CALLS:,}); start a new task"]


# Whether a call fails a row: True or False, or the messages that say what is wrong (none: it
# passes).
Verdict = bool | list[str]
Row = Callable[[Facts], Verdict]

ROWS: tuple[tuple[str, Row], ...] = (
    ("request.invalid", request_invalid),
    ("request.unknown", request_unknown),
    ("task.unknown", task_unknown),
    ("task.expired", task_expired),
    ("task.ended", task_ended),
    ("scope.tool", scope_tool),
    ("scope.intent", scope_intent),
    ("scope.data", scope_data),
    ("delegation.mismatch", delegation_mismatch),
    ("delegation.cycle", delegation_cycle),
    ("delegation.depth", delegation_depth),
    ("delegation.to", delegation_to),
    ("delegation.scope", delegation_scope),
    ("delegation.expired", delegation_expired),
    ("identity.invalid", identity_invalid),
    ("identity.mismatch", identity_mismatch),
    ("identity.missing", identity_missing),
    ("store.unavailable", store_unavailable),
    ("session.full", session_full),
)
CODES = tuple(code for code, _ in ROWS)
# The rows that say what is wrong (those that answer with messages, not with a bool), and their
# codes: a deny that failed none of them has no message to write, and `explain` runs only them.
WORDED_ROWS = tuple((code, row) for code, row in ROWS
                    if row.__annotations__.get("return") != "bool")
WORDED = frozenset(code for code, _ in WORDED_ROWS)


def check(c: Facts) -> tuple[list[str], list[str]]:
    """Every row: the codes of the failed checks in the order of the table, and their messages.

    A failed check is a built-in forbid: the caller still evaluates every rule (§5 step 3).
    """
    codes = [code for code, row in ROWS if row(c)]
    return codes, explain(c, codes)


def explain(c: Facts, codes: Collection[str]) -> list[str]:
    """The messages of the failed checks `codes`, in the order of the table (each row is run
    again: this is the path of a deny, and evaluation is pure; the rows that answer with a
    bool have nothing to say, and are not run)."""
    out: list[str] = []
    for code, row in WORDED_ROWS:
        if code in codes:
            verdict = row(c)
            if isinstance(verdict, list):
                out.extend(verdict)
    return out


# ---- the words of the table ---------------------------------------------------------------------------


def chain_depth(chain: Sequence[object]) -> int:
    """`chain.depth`: the hand-offs from the origin.

    >>> chain_depth(["user:alice", "support_bot"]), chain_depth(["user:alice"]), chain_depth([])
    (1, 0, 0)
    """
    return max(len(chain) - 1, 0)


def after_first_agent(chain: Sequence[HopView]) -> Sequence[HopView]:
    """The hops after the chain's first agent: its first hop whose kind is not `human`. Kinds are
    exactly human, agent and service, so a chain cannot skip `delegation.to` by how it labels its
    hops."""
    for i, hop in enumerate(chain):
        if hop.kind != "human":
            return chain[i + 1 :]
    return ()


def fits(c: Facts, scope: ScopeView) -> bool:
    """Whether the call is inside a hop's scope: its tool, every intent and every data class."""
    tool = c.request.tool
    return ((scope.tools is None or any(scope_has(p, tool) for p in scope.tools))
            and (scope.intents is None or c.intents <= set(scope.intents))
            and (scope.data is None or within(c, scope.data)))


def scope_has(pattern: str, tool: str) -> bool:
    """Whether a hop scope's pattern (from the request) matches the tool. A pattern that would
    cost more than `matches` allows (MAX_MATCH_WORK) matches nothing: the scope then refuses.

    >>> scope_has("crm.*", "crm.lookup"), scope_has("crm.*", "http.get")
    (True, False)
    """
    glob = compile_glob(pattern)
    return glob.work(len(tool)) <= MAX_MATCH_WORK and glob.match(tool)


def within(c: Facts, ceiling: str) -> bool:
    """`data <= ceiling` for the call's data classes."""
    try:
        return c.policy.lattice.set_leq(c.data, ceiling)
    except EvalError:  # an undeclared class is never within a ceiling
        return False


def identify(check: IdentityCheck, agent: AgentView, now: datetime) -> Identity:
    """The identity check's answer for the request's agent, at `now`. A check that raises (a
    defect of the check) refuses the agent rather than letting the asserted id through."""
    try:
        return check(agent.id, agent.svid, now)
    except Exception as exc:  # noqa: BLE001 - fail closed, whatever went wrong
        asserted = agent.id if agent.id is not None else ""
        return Identity(asserted, False, "identity.invalid",
                        f"identity.invalid: the identity check failed ({type(exc).__name__})")


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")

"""The task runtime: live task instances, their delegation chains and sessions, and revocation.

One implementation serves trace replay (`agp test`, `agp replay`) and services that embed agp:

    >>> import agp                                                    # doctest: +SKIP
    >>> tasks = agp.load("examples/policies/customer-support").tasks()   # doctest: +SKIP
    >>> tasks.start({"id": "t-1", "kind": "support_ticket", "params": {"customer": "c-1"}},
    ...             agent="spiffe://acme.com/agents/support-bot",
    ...             chain=[{"principal": "user:alice", "kind": "human"}])          # doctest: +SKIP
    >>> tasks.decide(task="t-1", agent="spiffe://acme.com/agents/support-bot",
    ...              tool="crm.lookup", args={"customer": "c-1"}).decision       # doctest: +SKIP
    >>> tasks.observe("t-1", data=["pii"])                            # doctest: +SKIP
    >>> tasks.end("t-1")                                              # doctest: +SKIP

The state (who acts in which task, through which chain, the session, whether the task has
ended) lives in a store (agp.store: the engine's memory, or Redis); every decision is the
engine's, of a request built from it. A call is decided and appended to its task's session
atomically: read the task at some version, decide, append only if the task is still at that
version, else read and decide again (compare-and-set per task). Only the attempt that is handed
out mints a grant and writes the decision log (`Engine.stages`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from agp.diagnostics import did_you_mean
from agp.envelope import CODES as ENVELOPE_CODES
from agp.interp import tool_labels
from agp.limits import MAX_SESSION_CALLS, check_request_value
from agp.model import Agent, Decision, HistoryEntry, HistoryItem, Hop, Request, Scope, Task
from agp.policy import Policy
from agp.runtime.events import (
    CallEvent,
    Delegate,
    Observe,
    TaskEnd,
    TaskSpec,
    TaskStart,
    construct,
    error_text,
    fast_event,
    field_path,
)
from agp.store import Store, StoreUnavailable, TaskRecord

if TYPE_CHECKING:
    from agp.engine import Engine, Stages

M = TypeVar("M", bound=BaseModel)

# A call whose task changed under it this many times in a row is denied `store.unavailable`
# rather than retried forever (each retry means another process's call went through).
MAX_ATTEMPTS = 100
# Tools whose declared labels are kept resolved, and chains that start tasks kept shared (each
# cache is emptied when it is full).
_LABEL_CACHE = 4096
_ROOT_CACHE = 4096


class TaskError(ValueError):
    """A lifecycle mistake: an unknown task, a task id used twice, a delegator not in the task,
    a task kind or an observed class that the policy set does not declare, an argument of the
    wrong shape."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


class TaskRuntime:
    """Task instances in one store, decided by one engine; safe to use from many threads (and,
    with a shared store, many processes) at once."""

    def __init__(self, engine: Engine, store: Store | None = None) -> None:
        self.engine = engine
        self.store: Store = store if store is not None else engine.store
        self._labels: tuple[Policy | None, dict[str, _Labels]] = (None, {})
        self._roots: dict[tuple[object, ...], tuple[Hop, ...]] = {}

    # ---- the API for services: plain values in, validated here -------------------------------

    def start(self, task: dict[str, Any] | TaskSpec, agent: str | dict[str, Any],
              chain: list[Any] | None = None, at: datetime | str | None = None) -> None:
        """Open a task instance started at `at` (default: now); its chain is `chain` + `agent`.

        Raises TaskError when the task's id names a task already known (open or ended: an id
        names one instance for good), when the task's kind is not declared by the policy set
        (its calls could only be denied with `task.unknown`), or when an argument has the wrong
        shape; StoreUnavailable when the store cannot be reached.
        """
        event = self._validate(TaskStart, {"task": task, "agent": agent, "chain": chain or [],
                                           "ts": _when(at), "event": "task.start"}, at="at")
        tasks = self.engine.evaluator.policy.tasks
        kind = event.task.kind
        if kind not in tasks:
            hint = did_you_mean(kind, tasks)
            raise TaskError(f"task kind {kind!r} is not declared in the policy set; "
                            + (hint or "declared: " + (", ".join(sorted(tasks)) or "none")))
        self.apply_start(event)

    def delegate(self, task: str, from_: str, to: str, scope: dict[str, Any] | None = None,
                 at: datetime | str | None = None) -> None:
        """Hand the task from `from_` to `to` (optionally narrowed to `scope`) at `at`."""
        event = self._validate(Delegate, {"task": task, "from": from_, "to": to, "scope": scope,
                                          "ts": _when(at), "event": "delegate"}, at="at")
        self.apply_delegate(event)

    def decide(self, agent: str | dict[str, Any], tool: str, task: str | None = None,
               now: datetime | str | None = None, *, intent: list[str] | None = None,
               args: dict[str, Any] | None = None, data: list[str] | None = None,
               target: dict[str, Any] | None = None,
               context: dict[str, Any] | None = None) -> Decision:
        """Decide one call of `agent` in `task` (or outside any task when None) at `now`, with
        the task's session, and append it to the session.

        A call that does not have the documented shape is denied with `request.invalid`, as by
        `Engine.decide`, and its errors name the fields as given here (`now`, `args`, ...).
        A store that cannot be reached denies with `store.unavailable`.
        Raises TaskError for a task that was never started.
        """
        # Copies, as pydantic makes them: the session keeps the call, and the caller keeps
        # its own objects.
        fields: dict[str, object] = {k: _copy(v) for k, v in (
            ("intent", intent), ("args", args), ("data", data), ("target", target),
            ("context", context)) if v is not None}
        when = _when(now)
        value = {"agent": agent, "tool": tool, **fields, "task": task, "ts": when, "event": "call"}
        event = fast_event(value)
        if isinstance(event, CallEvent):
            return self.call(event)[1]
        # Not vouched for by the fast path: pydantic, then agp.limits (which the fast path
        # implies, and the event model does not check).
        request: dict[str, Any] = {"agent": _agent_dict(agent), "tool": tool, **fields, "now": when}
        try:
            event = CallEvent.model_validate(value)
        except ValidationError:
            event = None
        if event is None or check_request_value(request) is not None:
            # Let the engine say what is wrong, with the task's own state, exactly as it would
            # for a whole request: the call is never decided outside its task.
            if task is None:
                return self.engine.decide(request)
            try:
                record = self._record(_task_id(task))
            except StoreUnavailable:
                return self.engine.decide(request, store_unavailable=True)
            agent_id = request["agent"].get("id") if isinstance(request["agent"], dict) else None
            request["task"] = record.task.model_dump(exclude_none=True)
            request["chain"] = [h.model_dump(exclude_none=True)
                                for h in _chain_of(record, agent_id)]
            return self.engine.decide(request, task_ended=record.ended)
        return self.call(event)[1]

    def observe(self, task: str, data: list[str], at: datetime | str | None = None) -> None:
        """Add data classes to the task's `task.seen`: what a call actually returned.

        A class the policy set does not declare is kept (every later call of the task is then
        denied `request.unknown`) and reported: TaskError after it was recorded.
        """
        self.apply_observe(self._validate(Observe, {"task": task, "data": data, "ts": _when(at),
                                                    "event": "observe"}, at="at"))

    def approve(self, task: str, tool: str, args: dict[str, Any] | None = None) -> bool:
        """Turn the task's most recent `ask` call of `tool` with `args` into an `allow` in its
        history (a human approved it); False when there is no such call."""
        task_id, args = _task_id(task), args or {}
        for _ in range(MAX_ATTEMPTS):
            record = self._record(task_id)
            index = next((i for i in range(len(record.history) - 1, -1, -1)
                          if _is_asked(record.history[i], tool, args)), None)
            if index is None:
                return False
            if self.store.approve(task_id, record.version, index):
                return True
        raise StoreUnavailable(f"task {task_id!r} changed {MAX_ATTEMPTS} times while approving")

    def end(self, task: str, at: datetime | str | None = None) -> None:
        """End the task: every later call in it is denied with `task.ended`, and its grants are
        revoked."""
        self.apply_end(self._validate(TaskEnd, {"task": task, "ts": _when(at),
                                                "event": "task.end"}, at="at"))

    def active(self) -> list[str]:
        """The ids of the tasks started and not ended."""
        return self.store.active()

    def known(self, task: str) -> bool:
        """Whether `task` names a task of the store, open or ended."""
        return self.store.task(task) is not None

    def session(self, task: str) -> tuple[list[str], list[HistoryEntry]]:
        """The task's `task.seen` and `task.history` as they stand."""
        record = self._record(task)
        return list(record.seen), list(record.history)

    # ---- the same operations on validated trace events ----------------------------------------

    def apply_start(self, event: TaskStart) -> None:
        spec = event.task
        # The stored task has no session (the record holds it): its `seen` and `history` are
        # one shared empty list, never changed.
        task = construct(Task, {"kind": sys.intern(spec.kind), "id": spec.id, "params": spec.params,
                                "objective": spec.objective, "started_at": event.ts,
                                "seen": _NO_SESSION, "history": _NO_SESSION}, _STARTED)
        agent_id = _principal(event.agent)
        root = self._root(event.chain, agent_id)
        if not self.store.create_task(task, root, agent_id):
            record = self.store.task(spec.id)
            state = "ended" if record is not None and record.ended else "running"
            raise TaskError(f"task {spec.id!r} is already {state}: a task id names one task "
                            "instance for good; start the new one under a new id")

    def apply_delegate(self, event: Delegate) -> None:
        record = self._record(event.task)
        chain = record.chains.get(event.from_)
        if chain is None:
            raise TaskError(f"{event.from_} does not act in task {event.task!r}, "
                            "so it cannot delegate")
        to = sys.intern(event.to)  # kept by every task it acts in: one string for all of them
        self.store.delegate(event.task, to, (*chain, _hop(to, event.ts, event.scope)))

    def apply_observe(self, event: Observe) -> None:
        self._record(event.task)
        self.store.observe(event.task, event.data)
        declared = self.engine.evaluator.policy.lattice.below
        unknown = [c for c in dict.fromkeys(event.data) if c not in declared]
        if unknown:
            raise TaskError(", ".join(f"`{c}`" for c in unknown)
                            + (" is" if len(unknown) == 1 else " are")
                            + " not a declared data class; kept in the task's `seen`, so its "
                            "later calls are denied request.unknown")

    def apply_end(self, event: TaskEnd) -> None:
        self._record(event.task)
        self.store.end_task(event.task)

    def call(self, event: CallEvent) -> tuple[Request, Decision]:
        """Decide a call with its task's session, append it to the session, and return the
        request as decided with its decision.

        A call may be decided more than once (compare-and-set: another call joined the session
        first), so each attempt decides without side effects, and the grant and the log line
        happen once, for the attempt whose decision is handed out. The grant is minted before
        the append, and the append carries the decision as finally handed out: an allow whose
        grant the ledger cannot record is appended as the `store.unavailable` deny it became,
        never as an allow (committing first and minting after could leave an allow in the
        history of a call that was denied, with no store to correct it in). The price: a grant
        minted for an attempt that then loses the race is recorded in the ledger but dropped
        here, never handed out, so nobody holds it.
        """
        stages = self.engine.stages  # one policy set for every attempt of the call
        task_id, ts = event.task, event.ts
        if task_id is None:
            request = self._request(event, None, (), ts)
            return request, stages.finish(request, stages.decide(request), task_ended=False)
        agent_id = _principal(event.agent)
        for _ in range(MAX_ATTEMPTS):
            try:
                record = self._record(task_id)
            except StoreUnavailable:
                return self._unavailable(event, stages)
            # Decided at the later of the call's time and the task's latest stored time, so
            # that a clock slightly behind another process's never puts history in the future.
            latest = record.latest
            now = ts if ts >= latest else latest
            task = construct(Task, {**record.task.__dict__, "seen": record.seen,
                                    "history": record.history}, _ALL_TASK)
            request = self._request(event, task, _chain_of(record, agent_id), now)
            ended = record.ended
            decision = stages.decide(request, task_ended=ended)
            if ended or len(record.history) >= MAX_SESSION_CALLS or not _joins_session(decision):
                return request, stages.finish(request, decision, task_ended=ended)
            decision = stages.settle(request, decision, task_ended=ended)
            item, seen = self._item(request, decision, now)
            try:
                joined = self.store.append(task_id, record.version, item, seen)
            except StoreUnavailable:
                return self._unavailable(event, stages)
            if joined:
                stages.record(request, decision, task_ended=ended)
                return request, decision
        return self._unavailable(event, stages)

    def decide_call(self, event: CallEvent) -> Decision:
        return self.call(event)[1]

    # ---- helpers ------------------------------------------------------------------------------

    def _record(self, task_id: str) -> TaskRecord:
        record = self.store.task(task_id)
        if record is None:
            raise TaskError(f"task {task_id!r} was never started")
        return record

    @staticmethod
    def _request(event: CallEvent, task: Task | None, chain: Sequence[Hop],
                 now: datetime) -> Request:
        # The call's own values, validated once (agp.runtime.events), read from the event's
        # dict: a pydantic model's attribute costs three times a dict's item.
        e = event.__dict__
        return construct(Request, {
            "agent": e["agent"], "task": task, "chain": list(chain), "tool": e["tool"],
            "intent": e["intent"], "args": e["args"], "data": e["data"],
            "target": e["target"], "context": e["context"], "now": now}, _ALL_REQUEST)

    def _root(self, chain: list[Hop], agent: str) -> tuple[Hop, ...]:
        """The chain of the agent that starts a task: `chain` and the agent's own hop. Tasks
        started the same way (the same principals, without scopes) share one tuple of hops:
        a task costs its own state, not a copy of its chain."""
        if any(h.scope is not None for h in chain):
            return (*chain, _hop(agent, None, None))
        key = (*((h.principal, h.kind, h.at) for h in chain), agent)
        root = self._roots.get(key)
        if root is None:
            if len(self._roots) >= _ROOT_CACHE:
                self._roots.clear()
            root = self._roots[key] = (*chain, _hop(agent, None, None))
        return root

    def _unavailable(self, event: CallEvent, stages: Stages) -> tuple[Request, Decision]:
        """The call as it can be built without its task's state, denied `store.unavailable`
        (and logged: it is the call's one decision)."""
        request = self._request(event, None, (), event.ts)
        return request, stages.finish(request, stages.decide(request, store_unavailable=True),
                                      task_ended=False)

    def _item(self, request: Request, decision: Decision,
              now: datetime) -> tuple[HistoryItem, list[str]]:
        """The call's history item (its resolved, declared labels) and the classes it adds to
        `seen` (those of an allowed or asked call: a denied call took nothing in)."""
        policy = self.engine.evaluator.policy
        cached, labels = self._labels
        if cached is not policy or len(labels) >= _LABEL_CACHE:
            labels = {}
            self._labels = (policy, labels)
        r = request.__dict__  # cheaper than a pydantic model's attributes
        name, requested_intents, requested_data = r["tool"], r["intent"], r["data"]
        tool = labels.get(name)
        if tool is None:
            intents, data, _ = tool_labels(policy, name)
            intents, data = intents & policy.intents, data & policy.lattice.below.keys()
            tool = labels[name] = (intents, data, sorted(intents), sorted(data))
        intents, data, intent_list, classes = tool
        # The sorted lists of a tool's own labels are shared by its items (like `seen`, an
        # item's lists are never changed in place): an item costs its args, not its labels.
        if requested_intents:
            more = policy.intents.intersection(requested_intents)
            if not more <= intents:
                intent_list = sorted(intents | more)
        if requested_data:
            declared = policy.lattice.below.keys() & set(requested_data)
            if not declared <= data:
                classes = sorted(data | declared)
        item = construct(HistoryItem, {"tool": name, "intent": intent_list,
                                       "data": classes, "args": r["args"],
                                       "decision": decision.decision, "at": now}, _ALL_ITEM)
        return item, classes if decision.decision != "deny" else []

    @staticmethod
    def _validate(model: type[M], value: dict[str, Any], *, at: str) -> M:
        """The event of an API call; errors name the arguments as the caller wrote them."""
        event = fast_event(value)
        if isinstance(event, model):
            return event
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            messages = []
            for err in exc.errors(include_url=False):
                where = field_path(err["loc"])
                where = at + where[2:] if where == "ts" or where.startswith("ts.") else where
                messages.append(f"{where}: {error_text(err)}")
            raise TaskError("; ".join(messages)) from None


# A tool's declared intents and classes, as sets and as the sorted lists history items hold.
_Labels = tuple[frozenset[str], frozenset[str], list[str], list[str]]

# The fields sets of the models built with `construct`: what `model_construct` would record.
# One set each is shared by every instance: pydantic copies a fields set (model_copy), never
# changes one in place.
_ALL_REQUEST = set(Request.model_fields)
_ALL_TASK = set(Task.model_fields)
_STARTED = _ALL_TASK - {"seen", "history"}  # a task as stored, without its session
_ALL_ITEM = set(HistoryItem.model_fields)
_ALL_HOP = set(Hop.model_fields)
_NO_SESSION: list[Any] = []


def _hop(principal: str, at: datetime | None, scope: Scope | None) -> Hop:
    """The hop of an agent in a task's chain: the one that started it, or a delegate."""
    return construct(Hop, {"principal": principal, "kind": "agent", "at": at, "scope": scope},
                     _ALL_HOP)


def _joins_session(decision: Decision) -> bool:
    """Whether a decided call joins its session: not when its content cannot be trusted
    (`request.invalid`, an `identity.*` failure) or the session is full. Those are envelope
    codes, so only a deny can carry them."""
    return decision.decision != "deny" or _UNTRUSTED.isdisjoint(decision.rules)


_UNTRUSTED = frozenset(c for c in ENVELOPE_CODES
                       if c in ("request.invalid", "session.full") or c.startswith("identity."))


def _is_asked(item: HistoryEntry, tool: str, args: dict[str, Any]) -> bool:
    return item.decision == "ask" and item.tool == tool and item.args == args


def _chain_of(record: TaskRecord, agent_id: object) -> tuple[Hop, ...]:
    # An agent nobody handed the task to acts through the task's own chain, which does not end
    # with it: the call is denied (delegation.mismatch).
    return record.chains.get(agent_id, record.root) if isinstance(agent_id, str) else record.root


def _principal(agent: Agent) -> str:
    """The principal an agent acts as in a task: its asserted id (an SVID-only agent is known
    by its token until verified, and acts through the task's own chain)."""
    return agent.id if agent.id is not None else ""


def _when(at: datetime | str | None) -> datetime | str:
    return _now() if at is None else at


def _task_id(task: Any) -> str:
    if not isinstance(task, str):
        raise TaskError(f"task: expected a task id string, got {type(task).__name__}")
    return task


def _copy(value: object) -> object:
    return dict(value) if type(value) is dict else list(value) if type(value) is list else value


def _agent_dict(agent: object) -> object:
    return {"id": agent} if isinstance(agent, str) else agent


__all__ = ["Agent", "Scope", "TaskError", "TaskRuntime"]

"""The task runtime: live task instances, their delegation chains, and automatic revocation.

One implementation serves trace replay (`agp test`, `agp replay`) and services that embed agp:

    >>> import agp                                                    # doctest: +SKIP
    >>> tasks = agp.TaskRuntime(agp.load("examples/policies/customer-support"))   # doctest: +SKIP
    >>> tasks.start({"id": "t-1", "kind": "support_ticket", "params": {"customer": "c-1"}},
    ...             agent="spiffe://acme.com/agents/support-bot",
    ...             chain=[{"principal": "user:alice", "kind": "human"}])          # doctest: +SKIP
    >>> tasks.decide(task="t-1", agent="spiffe://acme.com/agents/support-bot",
    ...              tool="crm.lookup", args={"customer": "c-1"}).decision       # doctest: +SKIP
    >>> tasks.end("t-1")                                              # doctest: +SKIP

The runtime keeps only state (who acts in which task, through which chain, and whether the task
has ended); every decision is `engine.decide(request, task_ended=...)`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from agp.diagnostics import did_you_mean
from agp.model import Agent, Decision, Hop, Request, Scope, Task
from agp.runtime.events import (
    CallEvent,
    Delegate,
    TaskEnd,
    TaskSpec,
    TaskStart,
    error_text,
    field_path,
)

if TYPE_CHECKING:
    from agp.engine import Engine

M = TypeVar("M", bound=BaseModel)


class TaskError(ValueError):
    """A lifecycle mistake: an unknown task, a task started twice, a delegator not in the task,
    a task kind that the policy set does not declare, an argument of the wrong shape."""


@dataclass(slots=True)
class TaskState:
    """One task instance. Chains are tuples, so a snapshot is never changed under a reader."""

    task: Task  # as it appears in every Request of the task (started_at = the start time)
    root: tuple[Hop, ...]  # the chain of the agent that started the task
    chains: dict[str, tuple[Hop, ...]] = field(default_factory=dict)  # principal -> its chain
    ended: bool = False


def _now() -> datetime:
    return datetime.now(timezone.utc)


class TaskRuntime:
    """Task instances of one engine, safe to use from many threads at once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._tasks: dict[str, TaskState] = {}
        self._lock = threading.Lock()

    # ---- the API for services: plain values in, validated here -------------------------------

    def start(self, task: dict[str, Any] | TaskSpec, agent: str | dict[str, Any],
              chain: list[Any] | None = None, at: datetime | str | None = None) -> None:
        """Open a task instance started at `at` (default: now); its chain is `chain` + `agent`.

        Raises TaskError when the task's kind is not declared by the policy set (its calls
        could only be denied with `task.unknown`), or when an argument has the wrong shape.
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
        """Decide one call of `agent` in `task` (or outside any task when None) at `now`.

        A call that does not have the documented shape is denied with `request.invalid`, as by
        `Engine.decide`, and its errors name the fields as given here (`now`, `args`, ...).
        Raises TaskError for a task that was never started.
        """
        fields: dict[str, object] = {k: v for k, v in (("intent", intent), ("args", args), ("data", data),
                                    ("target", target), ("context", context)) if v is not None}
        when = _when(now)
        try:
            event = CallEvent.model_validate({"agent": agent, "tool": tool, **fields,
                                              "task": task, "ts": when, "event": "call"})
        except ValidationError:
            # Let the engine say what is wrong, with the task's own state, exactly as it would
            # for a whole request: the call is never decided outside its task.
            request: dict[str, Any] = {"agent": _agent_dict(agent), "tool": tool, **fields,
                                       "now": when}
            ended = False
            if task is not None:
                state_task, chain, ended = self._snapshot(_task_id(task), request["agent"])
                request["task"] = state_task.model_dump(exclude_none=True)
                request["chain"] = [h.model_dump(exclude_none=True) for h in chain]
            return self.engine.decide(request, task_ended=ended)
        return self.decide_call(event)

    def end(self, task: str, at: datetime | str | None = None) -> None:
        """End the task: every later call in it is denied with `task.ended`."""
        self.apply_end(self._validate(TaskEnd, {"task": task, "ts": _when(at),
                                                "event": "task.end"}, at="at"))

    def active(self) -> list[str]:
        """The ids of the tasks started and not ended."""
        with self._lock:
            return [tid for tid, s in self._tasks.items() if not s.ended]

    # ---- the same operations on validated trace events ----------------------------------------

    def apply_start(self, event: TaskStart) -> None:
        spec = event.task
        task = Task.model_construct(kind=spec.kind, id=spec.id, params=spec.params,
                                    objective=spec.objective, started_at=event.ts)
        root = (*event.chain, Hop.model_construct(principal=event.agent.id, kind="agent",
                                                  at=None, scope=None))
        with self._lock:
            old = self._tasks.get(spec.id)
            if old is not None and not old.ended:
                raise TaskError(f"task {spec.id!r} is already running")
            # An ended task's id may start a new instance: the old one is gone for good.
            self._tasks[spec.id] = TaskState(task, root, {event.agent.id: root})

    def apply_delegate(self, event: Delegate) -> None:
        with self._lock:
            state = self._state(event.task)
            chain = state.chains.get(event.from_)
            if chain is None:
                raise TaskError(f"{event.from_} does not act in task {event.task!r}, "
                                "so it cannot delegate")
            hop = Hop.model_construct(principal=event.to, kind="agent", at=event.ts,
                                      scope=event.scope)
            state.chains[event.to] = (*chain, hop)

    def apply_end(self, event: TaskEnd) -> None:
        with self._lock:
            self._state(event.task).ended = True

    def request_for(self, event: CallEvent) -> tuple[Request, bool]:
        """The Request a call makes, and whether its task has ended."""
        task: Task | None = None
        chain: tuple[Hop, ...] = ()
        ended = False
        if event.task is not None:
            task, chain, ended = self._snapshot(event.task, event.agent.id)
        request = Request.model_construct(
            agent=event.agent, task=task, chain=list(chain), tool=event.tool,
            intent=event.intent, args=event.args, data=event.data, target=event.target,
            context=event.context, now=event.ts)
        return request, ended

    def decide_call(self, event: CallEvent) -> Decision:
        request, ended = self.request_for(event)
        return self.engine.decide(request, task_ended=ended)

    # ---- helpers ------------------------------------------------------------------------------

    def _snapshot(self, task_id: str, agent: Any) -> tuple[Task, tuple[Hop, ...], bool]:
        """The task, the chain `agent` acts through in it, and whether the task has ended."""
        agent_id = agent.get("id") if isinstance(agent, dict) else agent
        with self._lock:
            state = self._state(task_id)
            # An agent nobody handed the task to acts through the task's own chain, which does
            # not end with it: the call is denied (delegation.mismatch).
            chain = state.chains.get(agent_id, state.root) if isinstance(agent_id, str) \
                else state.root
            return state.task, chain, state.ended

    def _state(self, task_id: str) -> TaskState:
        state = self._tasks.get(task_id)
        if state is None:
            raise TaskError(f"task {task_id!r} was never started")
        return state

    @staticmethod
    def _validate(model: type[M], value: dict[str, Any], *, at: str) -> M:
        """The event of an API call; errors name the arguments as the caller wrote them."""
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            messages = []
            for err in exc.errors(include_url=False):
                where = field_path(err["loc"])
                where = at + where[2:] if where == "ts" or where.startswith("ts.") else where
                messages.append(f"{where}: {error_text(err)}")
            raise TaskError("; ".join(messages)) from None


def _when(at: datetime | str | None) -> datetime | str:
    return _now() if at is None else at


def _task_id(task: Any) -> str:
    if not isinstance(task, str):
        raise TaskError(f"task: expected a task id string, got {type(task).__name__}")
    return task


def _agent_dict(agent: object) -> object:
    return {"id": agent} if isinstance(agent, str) else agent


__all__ = ["Agent", "Scope", "TaskError", "TaskRuntime", "TaskState"]

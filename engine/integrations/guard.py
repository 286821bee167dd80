"""`@agp.guard`: decide every call of a plain Python tool function before it runs.

    >>> import agp                                                          # doctest: +SKIP
    >>> tasks = agp.load("policies/").tasks()                               # doctest: +SKIP
    >>> @agp.guard(tasks, tool="crm.lookup", agent="spiffe://acme.com/bot", task="t-1")
    ... def lookup(customer: str) -> dict: ...                              # doctest: +SKIP

The function's arguments (bound by name, defaults filled in) are the call's `args`. On allow the
function runs; on deny it raises `PolicyDenied`; on ask it runs only when `on_ask(decision, args)`
returns true (it may be async for an async function), else it raises `ApprovalRequired`. Async
functions are guarded the same way. `agent` and `task` may be callables, read at each call (a
context variable's `.get`, say), for tools shared by many agents or tasks.

With a TaskRuntime the call is decided in its task (and joins its session); with an Engine it is
decided as a self-contained request. Anything the policy cannot read as JSON arguments is
denied (`request.invalid`): the guard never lets an undecidable call through.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from agp.model import Decision

if TYPE_CHECKING:
    from agp.engine import Engine
    from agp.runtime import TaskRuntime

F = TypeVar("F", bound=Callable[..., Any])
Value = str | None | Callable[[], str | None]
OnAsk = Callable[[Decision, dict[str, Any]], "bool | Awaitable[bool]"]


class PolicyDenied(PermissionError):
    """The policy did not allow the call; `decision` says why (rules, reasons)."""

    def __init__(self, tool: str, decision: Decision) -> None:
        why = "; ".join(decision.reasons) or ", ".join(decision.rules)
        super().__init__(f"{self.head}: {tool}" + (f" ({why})" if why else ""))
        self.tool = tool
        self.decision = decision

    head = "denied by policy"


class ApprovalRequired(PolicyDenied):
    """The policy asks for a human's approval, and none was given."""

    head = "needs approval"


def refusal(head: str, tool: str, decision: Decision) -> str:
    """The text a refused call hands back to the model (`denied by policy: ...` or `needs
    approval: ...`): the tool, the deciding rules, the reasons and any evaluation errors, so
    that the agent learns why and can change course. The MCP gate and the framework adapters
    answer with it.

    >>> d = Decision(decision="deny", ttl=0, rules=["no_merge"], reasons=["merging needs review"])
    >>> refusal("denied by policy", "github/merge", d)
    'denied by policy: github/merge; rules: no_merge; reasons: merging needs review'
    """
    text = f"{head}: {tool}; rules: {', '.join(decision.rules) or '(none)'}"
    if decision.reasons:
        text += "; reasons: " + "; ".join(decision.reasons)
    if decision.errors:
        text += "; errors: " + "; ".join(decision.errors)
    return text


def _read(value: Value) -> str | None:
    return value() if callable(value) else value


class Guarded:
    """What `guard` decides with: the decider, who calls, in which task, as which tool."""

    def __init__(self, decider: Engine | TaskRuntime, tool: str, agent: Value,
                 task: Value, on_ask: OnAsk | None) -> None:
        self.decider, self.tool, self.agent, self.task, self.on_ask = (
            decider, tool, agent, task, on_ask)

    def decide(self, args: dict[str, Any]) -> Decision:
        from agp.runtime import TaskRuntime

        agent, task = _read(self.agent), _read(self.task)
        if agent is None:
            raise ValueError(f"agp.guard({self.tool!r}): no agent to decide the call for")
        if isinstance(self.decider, TaskRuntime):
            return self.decider.decide(agent=agent, tool=self.tool, task=task, args=args)
        request: dict[str, Any] = {"agent": {"id": agent}, "tool": self.tool, "args": args}
        if task is not None:
            raise ValueError("agp.guard: deciding in a task needs a TaskRuntime "
                             "(engine.tasks()), which knows the task's state")
        return self.decider.decide(request)

    def approved(self, args: dict[str, Any]) -> None:
        """A human approved an ask: in a task, the call becomes an allow in its session."""
        from agp.runtime import TaskRuntime

        task = _read(self.task)
        if isinstance(self.decider, TaskRuntime) and task is not None:
            self.decider.approve(task, self.tool, args)

    def refused(self, decision: Decision) -> PolicyDenied:
        cls = ApprovalRequired if decision.decision == "ask" else PolicyDenied
        return cls(self.tool, decision)


def guard(decider: Engine | TaskRuntime, *, tool: str | None = None, agent: Value = None,
          task: Value = None, on_ask: OnAsk | None = None) -> Callable[[F], F]:
    """Decorate a tool function so that the policy decides each call before it runs.

    `tool` defaults to the function's name.
    """

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        guarded = Guarded(decider, tool or fn.__name__, agent, task, on_ask)

        def arguments(a: tuple[Any, ...], kw: dict[str, Any]) -> dict[str, Any]:
            bound = signature.bind(*a, **kw)
            bound.apply_defaults()
            return dict(bound.arguments)

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_call(*a: Any, **kw: Any) -> Any:
                args = arguments(a, kw)
                decision = guarded.decide(args)
                if decision.decision == "ask" and guarded.on_ask is not None:
                    answer = guarded.on_ask(decision, args)
                    if inspect.isawaitable(answer):
                        answer = await answer
                    if answer:
                        guarded.approved(args)
                        return await fn(*a, **kw)
                if decision.decision != "allow":
                    raise guarded.refused(decision)
                return await fn(*a, **kw)

            return cast(F, async_call)

        @functools.wraps(fn)
        def call(*a: Any, **kw: Any) -> Any:
            args = arguments(a, kw)
            decision = guarded.decide(args)
            if decision.decision == "ask" and guarded.on_ask is not None:
                answer = guarded.on_ask(decision, args)
                if inspect.isawaitable(answer):
                    raise TypeError("agp.guard: on_ask of a sync function must not be async")
                if answer:
                    guarded.approved(args)
                    return fn(*a, **kw)
            if decision.decision != "allow":
                raise guarded.refused(decision)
            return fn(*a, **kw)

        return cast(F, call)

    return decorate

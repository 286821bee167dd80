"""Trace events (FORMATS.md, "Trace"): one pydantic model per event type, extra fields refused.

The models reuse the Request's own pieces (`Agent`, `Hop`, `Scope`, timestamps, durations), so a
value that a Request would refuse is refused here too, at the line that carries it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from agp.model import Agent, Duration, Hop, JSONObject, Scope, Timestamp, validation_messages

Word = Literal["allow", "deny", "ask"]


def _agent(value: Any) -> Any:
    """In events, `agent` is the agent's id string or an object as in a Request."""
    return {"id": value} if isinstance(value, str) else value


AgentRef = Annotated[Agent, BeforeValidator(_agent)]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TaskSpec(_Event):
    """The task of a `task.start` event; it starts at the event's `ts`."""

    id: str = Field(min_length=1)
    kind: str
    params: JSONObject = Field(default_factory=dict)
    objective: str | None = None


class ExpectSpec(_Event):
    """A partial expectation: only the fields given are checked."""

    decision: Word | None = None
    ttl: Duration | None = None  # whole seconds, or a duration string such as "4m"
    rules: list[str] | None = None  # every name listed must be among the decision's rules
    reasons: list[str] | None = None  # every text listed must be among the decision's reasons


Expect = Union[Word, ExpectSpec]


class TaskStart(_Event):
    ts: Timestamp
    event: Literal["task.start"]
    task: TaskSpec
    agent: AgentRef
    chain: list[Hop] = Field(default_factory=list)


class Delegate(_Event):
    ts: Timestamp
    event: Literal["delegate"]
    task: str
    from_: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)
    scope: Scope | None = None


class CallEvent(_Event):
    ts: Timestamp
    event: Literal["call"]
    task: str | None = None
    agent: AgentRef
    tool: str
    # default_factory: pydantic deep-copies a literal mutable default on every event.
    intent: list[str] = Field(default_factory=list)
    args: JSONObject = Field(default_factory=dict)
    data: list[str] = Field(default_factory=list)
    target: JSONObject | None = None
    context: JSONObject = Field(default_factory=dict)
    expect: Expect | None = None


class TaskEnd(_Event):
    ts: Timestamp
    event: Literal["task.end"]
    task: str


class RequestEvent(_Event):
    ts: Timestamp
    event: Literal["request"]
    request: Any  # decided as it stands: a malformed request is denied with request.invalid
    expect: Expect | None = None


Event = Union[TaskStart, Delegate, CallEvent, TaskEnd, RequestEvent]

EVENTS: dict[str, type[_Event]] = {
    "task.start": TaskStart,
    "delegate": Delegate,
    "call": CallEvent,
    "task.end": TaskEnd,
    "request": RequestEvent,
}


class EventError(ValueError):
    """An event that does not have the documented shape."""


def parse_event(value: Any) -> Event:
    """Validate one decoded JSON line as an event; raise EventError with a readable message."""
    if not isinstance(value, dict):
        raise EventError(f"an event is a JSON object, not {_json_type(value)}")
    name = value.get("event")
    if name is None:
        raise EventError("missing field `event`")
    model = EVENTS.get(name) if isinstance(name, str) else None
    if model is None:
        raise EventError(f"unknown event {name!r}; expected one of " + ", ".join(EVENTS))
    try:
        event = model.model_validate(value)
    except ValidationError as exc:
        raise EventError(f"invalid `{name}` event: " + "; ".join(
            m.replace("from_:", "from:") for m in validation_messages(exc))) from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise EventError(f"invalid `{name}` event: {exc}") from None
    if isinstance(event, RequestEvent) and not _has_now(event.request):
        raise EventError("invalid `request` event: request.now is required in a trace")
    return event


def _has_now(request: Any) -> bool:
    # Only a missing `now` is this reader's business; anything else wrong with the request is
    # decided by the engine (deny, request.invalid), so that a trace can test it.
    return not isinstance(request, dict) or "now" in request


def _json_type(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def expected_ttl(expect: ExpectSpec) -> int | None:
    if expect.ttl is None:
        return None
    return int(expect.ttl // timedelta(seconds=1)) if expect.ttl % timedelta(seconds=1) == \
        timedelta(0) else -1  # a fractional ttl never equals a decision's whole seconds



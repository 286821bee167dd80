"""Trace events (FORMATS.md, "Trace"): one pydantic model per event type, extra fields refused.

The models reuse the Request's own pieces (`Agent`, `Hop`, `Scope`, timestamps, durations), so a
value that a Request would refuse is refused here too, at the line that carries it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationError,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from agp.diagnostics import did_you_mean
from agp.model import Agent, Duration, Hop, JSONObject, Scope, Timestamp

WORDS = ("allow", "deny", "ask")


def _word(value: Any) -> str:
    if isinstance(value, str) and value in WORDS:
        return value
    raise PydanticCustomError("decision_word", "{value} is not a decision; use allow, deny or ask",
                              {"value": json.dumps(value)})


Word = Annotated[str, PlainValidator(_word)]


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


def _expect_kind(value: Any) -> str | None:
    return "word" if isinstance(value, str) else "object" if isinstance(value, dict) else None


# A word or an object, told apart by the JSON type, so that a wrong value gets one message about
# what it is instead of one per member of the union.
Expect = Annotated[
    Union[Annotated[Word, Tag("word")], Annotated[ExpectSpec, Tag("object")]],
    Discriminator(_expect_kind, custom_error_type="expect",
                  custom_error_message="expected a decision word (allow, deny or ask) or an "
                                       "object with any of decision, ttl, rules, reasons"),
]
_TAGS = {"word", "object"}


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
    # The task state the decision depended on, beyond the request: the task had been ended (the
    # task runtime knows it, and the decision log records it).
    task_ended: bool = False
    expect: Expect | None = None
    audit: JSONObject | None = None  # what the decision log notes (policy hash, digest); not read


Event = Union[TaskStart, Delegate, CallEvent, TaskEnd, RequestEvent]

EVENTS: dict[str, type[Event]] = {
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
        raise EventError(f"unknown event {json.dumps(name)}; expected one of " + ", ".join(EVENTS))
    try:
        event = model.model_validate(value)
    except ValidationError as exc:
        raise EventError(event_messages(exc, model, value)) from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise EventError(f"invalid `{name}` event: {exc}") from None
    if isinstance(event, RequestEvent) and not _has_now(event.request):
        raise EventError("request.now is required in a trace (it is the decision time)")
    return event


def field_path(loc: tuple[int | str, ...]) -> str:
    """`chain[0].scope.ttl`: the path of a field, as in the JSON, without union tags."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in _TAGS:
            out += ("." if out else "") + ("from" if part == "from_" else str(part))
    return out


_EXPECTED = {"string_type": "a string", "list_type": "a list", "dict_type": "an object",
             "model_type": "an object", "bool_type": "true or false", "int_type": "an integer",
             "float_type": "a number"}


def error_text(err: ErrorDetails) -> str:
    """One pydantic error's message, in agp's words (the path is printed before it)."""
    kind = err["type"]
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in _EXPECTED:
        wanted = "an id string or an object" if err["loc"] == ("agent",) else _EXPECTED[kind]
        return f"expected {wanted}, not {_json_type(err['input'])}"
    return err["msg"].removeprefix("Value error, ")


def _names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


# The models whose unknown fields get a did-you-mean, by where they sit in an event.
_NESTED: dict[str, type[BaseModel]] = {"expect": ExpectSpec, "task": TaskSpec}


def event_messages(exc: ValidationError, model: type[BaseModel], value: dict[str, Any]) -> str:
    """What is wrong with an event, one clause per problem, each led by the field's path."""
    name = value["event"]
    out, missing = [], []
    for err in exc.errors(include_url=False):
        where = field_path(err["loc"])
        if err["type"] == "missing" and "." not in where and "[" not in where:
            missing.append(f"`{where}`")
        elif err["type"] == "extra_forbidden":
            parent, _, key = where.rpartition(".")
            known = _names(_NESTED[parent]) if parent in _NESTED else [] if parent else \
                _names(model)
            hint = did_you_mean(key, known)
            what = "unknown field" if parent else f"unknown field of a `{name}` event"
            out.append(f"{where}: {what}" + (f"; {hint}" if hint else ""))
        else:
            out.append(f"{where}: {error_text(err)}" if where else error_text(err))
    if missing:
        needs = [f.alias or n for n, f in model.model_fields.items()
                 if f.is_required() and n != "event"]
        note = (f"missing {', '.join(missing)}; a `{name}` event needs "
                f"{', '.join(needs[:-1])} and {needs[-1]}")
        if name == "request" and "request" not in value and "audit" in value:
            note += (" (this decision log line keeps only a digest of its request: the log was "
                     "written with include_request=False, and cannot be replayed)")
        out.insert(0, note)
    return "; ".join(out)


def _has_now(request: Any) -> bool:
    # Only a missing `now` is this reader's business; anything else wrong with the request is
    # decided by the engine (deny, request.invalid), so that a trace can test it.
    return not isinstance(request, dict) or "now" in request


def _json_type(value: Any) -> str:
    return {list: "a list", dict: "an object", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def expected_ttl(expect: ExpectSpec) -> int | None:
    if expect.ttl is None:
        return None
    return int(expect.ttl // timedelta(seconds=1)) if expect.ttl % timedelta(seconds=1) == \
        timedelta(0) else -1  # a fractional ttl never equals a decision's whole seconds



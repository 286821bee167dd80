"""Requests and decisions (FORMATS.md), as pydantic models that refuse extra fields."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Protocol, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from agp.limits import MAX_DURATION, check_request_value
from agp.syntax.parser import parse_duration
from agp.values import instant, json_problem

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z"
)


def parse_timestamp(value: Any) -> datetime:
    """An RFC 3339 timestamp with its time zone (a string, or an aware datetime from Python), as
    a UTC datetime within the bounds of agp.limits.

    >>> parse_timestamp("2026-11-28T10:00:00+01:00")
    datetime.datetime(2026, 11, 28, 9, 0, tzinfo=datetime.timezone.utc)
    """
    if isinstance(value, datetime):
        return instant(value)
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 timestamp such as 2026-11-28T10:00:00Z")
    text = value
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # Python keeps microseconds
        text = text.replace(frac.group(0), "." + frac.group(1)[:6], 1)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise ValueError(f"impossible timestamp {value!r}") from exc
    return instant(parsed)


_MAX_SECONDS = MAX_DURATION.total_seconds()


def parse_json_duration(value: Any) -> timedelta:
    """A duration in JSON: a string in the language's syntax or a number of seconds, from zero
    up to MAX_DURATION (a `timedelta` from Python is taken as it is, within the same bounds)."""
    if isinstance(value, timedelta):
        parsed = value
    elif isinstance(value, str):
        from_text = parse_duration(value)
        if from_text is None:
            raise ValueError(f"invalid duration {value!r}; use the language's syntax, like '5m'")
        parsed = from_text
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value:
            raise ValueError("a duration must be a number of seconds, not NaN")
        if value < 0:
            raise ValueError("a duration must not be negative")
        if value > _MAX_SECONDS:  # compared before timedelta() can overflow
            raise ValueError(f"a duration must not be longer than {MAX_DURATION.days} days")
        return timedelta(seconds=value)
    else:
        raise ValueError("a duration is a string like '5m' or a number of seconds")
    if parsed < timedelta(0):
        raise ValueError("a duration must not be negative")
    if parsed > MAX_DURATION:
        raise ValueError(f"a duration must not be longer than {MAX_DURATION.days} days")
    return parsed


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


_TOOL = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]+\Z")


def is_tool_name(name: str) -> bool:
    """Not empty, and without whitespace or control characters.

    >>> is_tool_name("payments.refund"), is_tool_name("a\u200bb"), is_tool_name("a b")
    (True, True, False)
    """
    # isprintable() is false for every whitespace but " " and for every control character, so
    # the common name needs no regular expression.
    return (name.isprintable() and " " not in name and name != "") or bool(_TOOL.match(name))


def _tool_name(value: str) -> str:
    if not is_tool_name(value):
        raise ValueError("a tool name is not empty and has no whitespace or control characters")
    return value


Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]
Duration = Annotated[timedelta, BeforeValidator(parse_json_duration)]
# Free-form objects (`args`, `context`, ...): JSON values, plus aware datetimes and timedeltas
# from Python, all within the bounds of agp.limits (agp.values.json_problem).
JSONObject = Annotated[dict[str, Any], AfterValidator(_json_object)]
ToolName = Annotated[str, AfterValidator(_tool_name)]
HopKind = Literal["human", "agent", "service"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Scope(_Strict):
    tools: list[str] | None = None
    intents: list[str] | None = None
    data: str | None = None
    ttl: Duration | None = None


class Hop(_Strict):
    principal: str = Field(min_length=1)
    kind: HopKind
    at: Timestamp | None = None
    scope: Scope | None = None


class Agent(_Strict):
    id: str
    attrs: JSONObject = {}


class Task(_Strict):
    kind: str
    id: str | None = None
    params: JSONObject = {}
    objective: str | None = None
    started_at: Timestamp | None = None


class Request(_Strict):
    """One tool call to decide. Only `agent.id` and `tool` are required."""

    agent: Agent
    task: Task | None = None
    chain: list[Hop] = []
    tool: ToolName
    intent: list[str] = []
    args: JSONObject = {}
    data: list[str] = []
    target: JSONObject | None = None
    context: JSONObject = {}
    now: Timestamp | None = None

    @model_validator(mode="before")
    @classmethod
    def _within_limits(cls, value: object) -> object:
        # However a Request is built (JSON, dict, keyword arguments), it respects agp.limits.
        exceeded = check_request_value(value)
        if exceeded is not None:
            raise ValueError(f"{exceeded.where}: {exceeded.message}")
        return value


class Decision(_Strict):
    decision: Literal["allow", "deny", "ask"]
    ttl: int
    rules: list[str]
    reasons: list[str] = []
    errors: list[str] = []
    policy: str = ""

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def to_json(self) -> dict[str, Any]:
        return self.model_dump()


# What deciding takes: a Request, or a dict as in FORMATS.md (validated on the way in; anything
# else is refused with `request.invalid`, never raised).
RequestInput: TypeAlias = "Request | dict[str, Any]"


class Decide(Protocol):
    """A decide function: `Engine.decide` and each evaluator's `decide`."""

    def __call__(self, request: RequestInput, *, task_ended: bool = False) -> Decision: ...


class RequestError(Exception):
    """A request that does not have the documented shape; `errors` says where and why."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def validation_messages(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            out.append(f"{loc}: unknown field")
        elif loc and msg.startswith((".", "[")):  # a free-form object names the path inside it
            out.append(f"{loc}{msg}")
        elif loc:
            out.append(f"{loc}: {msg}")
        else:  # a whole-request check names its own place
            out.append(msg)
    return out


def parse_request(value: Any) -> Request:
    """Validate a request given as a dict (or pass a Request through); raise RequestError."""
    if isinstance(value, Request):
        return value
    if not isinstance(value, dict):
        raise RequestError([f"request: expected a JSON object, got {type(value).__name__}"])
    try:
        return Request.model_validate(value)
    except ValidationError as exc:
        raise RequestError(validation_messages(exc)) from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise RequestError([f"request: {exc}"]) from None

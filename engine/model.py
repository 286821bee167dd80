"""Requests and decisions (FORMATS.md), as pydantic models that refuse extra fields."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from agp.limits import check_request_value
from agp.syntax.parser import parse_duration

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z"
)


def parse_timestamp(value: Any) -> datetime:
    """An RFC 3339 timestamp with its time zone (a string, or an aware datetime from Python)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a timestamp needs a time zone")
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 timestamp such as 2026-11-28T10:00:00Z")
    text = value
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # Python keeps microseconds
        text = text.replace(frac.group(0), "." + frac.group(1)[:6], 1)
    try:
        return datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise ValueError(f"impossible timestamp {value!r}") from exc


def parse_json_duration(value: Any) -> timedelta:
    """A duration in JSON: a string in the language's syntax or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        parsed = parse_duration(value)
        if parsed is None:
            raise ValueError(f"invalid duration {value!r}; use the language's syntax, like '5m'")
        return parsed
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or value != value:
            raise ValueError("a duration must not be negative")
        try:
            return timedelta(seconds=value)
        except OverflowError as exc:
            raise ValueError("duration too large") from exc
    raise ValueError("a duration is a string like '5m' or a number of seconds")


Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]
Duration = Annotated[timedelta, BeforeValidator(parse_json_duration)]
JSONObject = dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Scope(_Strict):
    tools: list[str] | None = None
    intents: list[str] | None = None
    data: str | None = None
    ttl: Duration | None = None


class Hop(_Strict):
    principal: str = Field(min_length=1)
    kind: str = Field(min_length=1)
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
    tool: str
    intent: list[str] = []
    args: JSONObject = {}
    data: list[str] = []
    target: JSONObject | None = None
    context: JSONObject = {}
    now: Timestamp | None = None

    @model_validator(mode="before")
    @classmethod
    def _within_limits(cls, value):
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

    def to_json(self) -> dict:
        return self.model_dump()


class RequestError(Exception):
    """A request that does not have the documented shape; `errors` says where and why."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def validation_messages(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            out.append(f"{loc}: unknown field")
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

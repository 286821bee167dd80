"""Requests and decisions (FORMATS.md), as pydantic models that refuse extra fields."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Protocol, TypeAlias, overload

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    WrapSerializer,
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
    frac = re.search(r"\.(\d+)", text) if "." in text else None  # most have no fraction
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
    """The acting agent: an asserted `id`, a JWT-SVID that proves it (`svid`), or both.

    Which id a decision uses, and whether it is verified, is the engine's identity check
    (agp.identity): a valid SVID's subject, else the asserted id, else the empty string.
    """

    id: str | None = None
    svid: str | None = None
    attrs: JSONObject = {}

    @model_validator(mode="after")
    def _named(self) -> Agent:
        if self.id is None and self.svid is None:
            raise ValueError("an agent needs an `id` or an `svid`")
        return self


Decided = Literal["allow", "deny", "ask"]


class HistoryItem(_Strict):
    """One earlier call of the task's session (LANGUAGE.md §6), oldest first in `task.history`."""

    tool: ToolName
    intent: list[str] = []
    data: list[str] = []
    args: JSONObject = {}
    decision: Decided
    at: Timestamp


class HistoryEntry(Protocol):
    """An item of `task.history` as evaluators read it: a HistoryItem, or the compiled
    evaluator's lighter copy of one (agp.compile.request)."""

    @property
    def tool(self) -> str: ...
    @property
    def intent(self) -> Sequence[str]: ...
    @property
    def data(self) -> Sequence[str]: ...
    @property
    def args(self) -> dict[str, Any]: ...
    @property
    def decision(self) -> str: ...
    @property
    def at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """What the envelope checks of a history (LANGUAGE.md §6), in one place: the labels its items
    name and their latest time.

    The envelope computes it with one pass over `task.history`, unless the history carries it
    as its `summary` attribute (a `HistoryView`): whoever appends to a session (the task runtime)
    keeps it up to date with `add`, so that a decision whose rules do not read the session does
    not pay for the history's length.

    >>> SessionSummary.EMPTY.add(["read"], ["pii"], parse_timestamp("2026-01-01T00:00:00Z")).classes
    frozenset({'pii'})
    """

    intents: frozenset[str]
    classes: frozenset[str]
    latest: datetime | None

    EMPTY: ClassVar[SessionSummary]

    def add(self, intents: Iterable[str], classes: Iterable[str], at: datetime) -> SessionSummary:
        """The summary with one more item (the sets are shared while they do not grow)."""
        more_i = self.intents if self.intents.issuperset(intents) else self.intents.union(intents)
        more_c = self.classes if self.classes.issuperset(classes) else self.classes.union(classes)
        latest = at if self.latest is None or at > self.latest else self.latest
        return SessionSummary(more_i, more_c, latest)

    @classmethod
    def of(cls, items: Iterable[HistoryEntry]) -> SessionSummary:
        intents: set[str] = set()
        classes: set[str] = set()
        latest: datetime | None = None
        for h in items:
            intents.update(h.intent)
            classes.update(h.data)
            if latest is None or h.at > latest:
                latest = h.at
        return cls(frozenset(intents), frozenset(classes), latest)


SessionSummary.EMPTY = SessionSummary(frozenset(), frozenset(), None)


class HistoryView(Sequence[HistoryEntry]):
    """The first `n` items of a session's (append-only) list, with their summary: a Request's
    `task.history` in O(1) of the history's length. Evaluators only take its length, iterate and
    index it, and read `summary`.

    >>> view = HistoryView([], 0, SessionSummary.EMPTY)
    >>> len(view), list(view), view.summary.latest
    (0, [], None)
    """

    __slots__ = ("_items", "_n", "summary")

    def __init__(self, items: Sequence[HistoryEntry], n: int, summary: SessionSummary):
        self._items = items
        self._n = n
        self.summary = summary

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> HistoryEntry: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[HistoryEntry]: ...

    def __getitem__(self, i: int | slice) -> HistoryEntry | Sequence[HistoryEntry]:
        if isinstance(i, slice):
            return [self._items[k] for k in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError("history index out of range")
        return self._items[i % self._n]

    def __iter__(self) -> Iterator[HistoryEntry]:
        items = self._items
        for k in range(self._n):
            yield items[k]


def session_summary(history: Sequence[HistoryEntry]) -> SessionSummary:
    """The summary a history carries, or one computed from its items."""
    summary = getattr(history, "summary", None)
    return summary if isinstance(summary, SessionSummary) else SessionSummary.of(history)


def _history_list(value: Sequence[HistoryItem], serialize: SerializerFunctionWrapHandler) -> Any:
    # The task runtime builds requests with a HistoryView (no copy per call); it serialises (the
    # decision log, model_dump) as the list it stands for.
    return serialize(value if isinstance(value, list) else list(value))


History = Annotated[list[HistoryItem], WrapSerializer(_history_list)]


class Task(_Strict):
    kind: str
    id: str | None = None
    params: JSONObject = {}
    objective: str | None = None
    started_at: Timestamp | None = None
    seen: list[str] = []  # the data classes the task has taken in so far (its session)
    history: History = []  # its earlier calls, oldest first


class Request(_Strict):
    """One tool call to decide. Only `agent.id` (or `agent.svid`) and `tool` are required."""

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


class _DecisionFields(_Strict):
    """What a Decision built from outside the evaluators (keywords, `model_validate`) must be:
    pydantic checks it, with its usual messages."""

    decision: Decided
    ttl: int
    rules: list[str]
    reasons: list[str] = []
    errors: list[str] = []
    policy: str = ""
    grant: str | None = None  # a signed grant (agp.identity.grants) on an allow, with an issuer


_DECISION_FIELDS = ("decision", "ttl", "rules", "reasons", "errors", "policy", "grant")


class _DecisionSlots:
    __slots__ = _DECISION_FIELDS

    decision: Decided
    ttl: int
    rules: list[str]
    reasons: list[str]
    errors: list[str]
    policy: str
    grant: str | None


class Decision(_DecisionSlots):
    """The answer to a request (FORMATS.md, Decision JSON): immutable.

    Not a pydantic model: the evaluators build one per decision from values that are valid by
    construction, and a plain slotted object costs a fraction of a model (docs/performance.md).
    Built from outside (`Decision(decision=..., ...)`, `Decision.model_validate`), it is checked
    as strictly as the model it replaces; `model_dump` and `model_copy` keep working.

    >>> Decision(decision="deny", ttl=0, rules=["default.deny"]).to_json()["rules"]
    ['default.deny']
    """

    __slots__ = ()

    def __init__(self, *, decision: Decided, ttl: int, rules: list[str],
                 reasons: list[str] | None = None, errors: list[str] | None = None,
                 policy: str = "", grant: str | None = None) -> None:
        fields: dict[str, Any] = {"decision": decision, "ttl": ttl, "rules": rules,
                                  "policy": policy, "grant": grant}
        if reasons is not None:
            fields["reasons"] = reasons
        if errors is not None:
            fields["errors"] = errors
        checked = _DecisionFields.model_validate(fields)
        for name in _DECISION_FIELDS:
            object.__setattr__(self, name, getattr(checked, name))

    @classmethod
    def model_validate(cls, value: object) -> Decision:
        """A Decision from its JSON object (as `to_json` gives it); raises ValidationError."""
        checked = _DecisionFields.model_validate(value)
        return make_decision(*(getattr(checked, n) for n in _DECISION_FIELDS))

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def to_json(self) -> dict[str, Any]:
        """The Decision JSON of FORMATS.md, with `grant` when one was issued."""
        out = {"decision": self.decision, "ttl": self.ttl, "rules": list(self.rules),
               "reasons": list(self.reasons), "errors": list(self.errors), "policy": self.policy}
        if self.grant is not None:
            out["grant"] = self.grant
        return out

    def model_dump(self, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
        """Every field (`grant` too), as a pydantic model dumps them."""
        return {name: (list(v) if type(v := getattr(self, name)) is list else v)
                for name in _DECISION_FIELDS if name not in exclude}

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Decision:
        """A copy with `update`'s fields replaced (not validated, as in pydantic)."""
        fields = {name: getattr(self, name) for name in _DECISION_FIELDS}
        unknown = (update or {}).keys() - fields.keys()
        if unknown:
            raise TypeError(f"Decision has no field {sorted(unknown)[0]!r}")
        fields.update(update or {})
        return make_decision(*fields.values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Decision is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a Decision is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not Decision:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _DECISION_FIELDS)

    def __hash__(self) -> int:  # as the frozen model's: lists make it unhashable
        return hash(tuple(getattr(self, n) for n in _DECISION_FIELDS))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in _DECISION_FIELDS)
        return f"Decision({inner})"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # pickling goes around __setattr__
        return make_decision, tuple(getattr(self, n) for n in _DECISION_FIELDS)


class _Built(_DecisionSlots):
    """How the evaluators build a Decision: `_Built(...)` returns a Decision whose values are
    valid by construction, unchecked. Plain assignments to the shared slots, then the object
    becomes a Decision (same layout): three times cheaper than assigning around Decision's
    `__setattr__`, on the path of every decision."""

    __slots__ = ()

    def __init__(self, decision: str, ttl: int, rules: list[str], reasons: list[str],
                 errors: list[str], policy: str, grant: str | None = None) -> None:
        self.decision = decision  # type: ignore[assignment]  # a Decided, by construction
        self.ttl = ttl
        self.rules = rules
        self.reasons = reasons
        self.errors = errors
        self.policy = policy
        self.grant = grant
        self.__class__ = Decision  # type: ignore[assignment]


class _MakeDecision(Protocol):
    def __call__(self, decision: str, ttl: int, rules: list[str], reasons: list[str],
                 errors: list[str], policy: str, grant: str | None = None) -> Decision: ...


# A Decision from values that are valid by construction (the evaluators' own), unchecked: the
# class itself, so that the hot path pays for no extra call.
make_decision: _MakeDecision = _Built  # type: ignore[assignment]


# What deciding takes: a Request, or a dict as in FORMATS.md (validated on the way in; anything
# else is refused with `request.invalid`, never raised).
RequestInput: TypeAlias = "Request | dict[str, Any]"


class Decide(Protocol):
    """A decide function: `Engine.decide` and each evaluator's `decide`."""

    def __call__(self, request: RequestInput, *, task_ended: bool = False,
                 store_unavailable: bool = False) -> Decision: ...


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

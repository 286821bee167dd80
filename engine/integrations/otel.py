"""`agp import otel`: OpenTelemetry GenAI spans (OTLP JSON) -> a trace (FORMATS.md, "Trace").

Spans follow the GenAI semantic conventions: an `execute_tool` span is one tool call
(`gen_ai.tool.name`, `gen_ai.tool.call.arguments`, `gen_ai.tool.call.id`), made by the agent of
`gen_ai.agent.id` (on the span or its nearest ancestor, as `invoke_agent` spans carry it), in
the conversation `gen_ai.conversation.id`. Each call becomes a `call` event at the span's start;
calls of one conversation (else of one trace) form one task when a task kind is given.

What the trace format has no field for (the span and tool call ids, the error of a failed call)
is kept in a `//` comment line above the call, which replay ignores.

>>> spans = {"resourceSpans": [{"scopeSpans": [{"spans": [{
...     "traceId": "t1", "spanId": "s1", "name": "execute_tool refund",
...     "startTimeUnixNano": "1764324005000000000",
...     "attributes": [
...         {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
...         {"key": "gen_ai.tool.name", "value": {"stringValue": "payments.refund"}},
...         {"key": "gen_ai.tool.call.arguments", "value": {"stringValue": "{\\"amount\\": 40}"}},
...         {"key": "gen_ai.agent.id", "value": {"stringValue": "spiffe://acme.com/bot"}}]}]}]}]}
>>> result = convert([Document("spans.json", None, spans)])
>>> result.lines()[-1]
'{"ts": "2025-11-28T10:00:05.000000Z", "event": "call", "agent": "spiffe://acme.com/bot", "tool": "payments.refund", "args": {"amount": 40}}'
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agp import jsonio

OP, TOOL, ARGS, CALL_ID = ("gen_ai.operation.name", "gen_ai.tool.name",
                           "gen_ai.tool.call.arguments", "gen_ai.tool.call.id")
AGENT, CONVERSATION, ERROR = "gen_ai.agent.id", "gen_ai.conversation.id", "error.type"


class InputError(ValueError):
    """Input that cannot be imported; the message names the file (and line) and the problem."""


@dataclass(frozen=True, slots=True)
class Document:
    """One ExportTraceServiceRequest: its file, its line (None for a whole-file document)."""

    file: str
    line: int | None
    value: Any

    def where(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Span:
    where: str  # the document it came from
    trace: str
    id: str
    parent: str
    name: str
    start: int  # Unix nanoseconds
    attributes: dict[str, Any]
    status_message: str | None


@dataclass(slots=True)
class Result:
    events: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)  # (event, note)
    calls: int = 0
    tasks: int = 0
    other: int = 0  # spans of other operations, or of none
    malformed: int = 0  # execute_tool spans skipped: arguments not an object, no tool name

    def lines(self) -> list[str]:
        out = []
        for event, note in self.events:
            if note:
                out.append(f"// {note}")
            out.append(json.dumps(event, ensure_ascii=False))
        return out

    def summary(self) -> str:
        return (f"{self.calls} call(s) in {self.tasks} task(s); skipped {self.other} span(s) of "
                f"other operations and {self.malformed} malformed execute_tool span(s)")


def read_documents(path: str | Path) -> list[Document]:
    """The OTLP JSON documents of a file: the whole file, or one per line (the Collector's file
    exporter). Raises InputError naming the file and line."""
    name = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: invalid UTF-8 at byte {exc.start}") from None
    try:
        return [Document(name, None, jsonio.loads(text))]
    except jsonio.JSONInputError as whole:
        docs = []
        lines = text.splitlines()
        if len([line for line in lines if line.strip()]) <= 1:
            raise InputError(whole.where(name)) from None
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    docs.append(Document(name, number, jsonio.loads(line)))
                except jsonio.JSONInputError as exc:
                    raise InputError(f"{name}:{number}: {exc.message}") from None
        return docs


def _list(value: Any, what: str, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"{where}: {what} is not a list")
    return value


def _object(value: Any, what: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{where}: {what} is not a JSON object")
    return value


def any_value(value: Any, where: str) -> Any:
    """The plain JSON value of an OTLP AnyValue (`{"stringValue": "x"}` -> "x")."""
    value = _object(value, "an attribute value", where)
    if not value:
        return None
    if len(value) != 1:
        raise InputError(f"{where}: an attribute value has one of stringValue, boolValue, "
                           "intValue, doubleValue, arrayValue, kvlistValue, bytesValue")
    ((kind, inner),) = value.items()
    if kind in ("stringValue", "bytesValue", "boolValue", "doubleValue"):
        return inner
    if kind == "intValue":
        try:
            return int(inner)
        except (TypeError, ValueError):
            raise InputError(f"{where}: intValue {inner!r} is not an integer") from None
    if kind == "arrayValue":
        return [any_value(v, where)
                for v in _list(_object(inner, "arrayValue", where).get("values"), "values", where)]
    if kind == "kvlistValue":
        return attributes(_object(inner, "kvlistValue", where).get("values"), where)
    raise InputError(f"{where}: unknown attribute value kind {kind!r}")


def attributes(value: Any, where: str) -> dict[str, Any]:
    out = {}
    for item in _list(value, "attributes", where):
        item = _object(item, "an attribute", where)
        key = item.get("key")
        if not isinstance(key, str):
            raise InputError(f"{where}: an attribute has no string key")
        out[key] = any_value(item.get("value", {}), where)
    return out


def spans_of(doc: Document) -> list[Span]:
    """Every span of an ExportTraceServiceRequest, in input order."""
    where = doc.where()
    root = _object(doc.value, "an OTLP JSON document", where)
    if "resourceSpans" not in root:
        raise InputError(f"{where}: not OTLP JSON trace data (no \"resourceSpans\")")
    spans = []
    for rs in _list(root["resourceSpans"], "resourceSpans", where):
        rs = _object(rs, "a resourceSpans item", where)
        for ss in _list(rs.get("scopeSpans"), "scopeSpans", where):
            ss = _object(ss, "a scopeSpans item", where)
            for raw in _list(ss.get("spans"), "spans", where):
                spans.append(_span(_object(raw, "a span", where), where))
    return spans


def _span(raw: dict[str, Any], where: str) -> Span:
    span_id = raw.get("spanId", "")
    trace = raw.get("traceId", "")
    if not isinstance(span_id, str) or not isinstance(trace, str):
        raise InputError(f"{where}: a span's traceId and spanId are strings")
    start = raw.get("startTimeUnixNano")
    try:
        nanos = int(start) if isinstance(start, (int, str)) and not isinstance(start, bool) \
            else -1
    except ValueError:
        nanos = -1
    status = raw.get("status")
    message = status.get("message") if isinstance(status, dict) else None
    message = message if isinstance(message, str) else None
    parent = raw.get("parentSpanId") or ""
    return Span(where, trace, span_id, parent if isinstance(parent, str) else "",
                str(raw.get("name", "")), nanos,
                attributes(raw.get("attributes"), f"{where}: span {span_id or '?'}"), message)


def timestamp(nanos: int) -> str:
    """RFC 3339 UTC with microseconds.

    >>> timestamp(1764324005123456789)
    '2025-11-28T10:00:05.123456Z'
    """
    seconds, rest = divmod(nanos, 1_000_000_000)
    when = datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=rest // 1000)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def convert(docs: list[Document], *, agent: str | None = None, task_kind: str | None = None,
            task_params: dict[str, Any] | None = None) -> Result:
    """The trace events of the spans of `docs`. Raises InputError for a call without an
    agent, or a tool call span without a usable start time."""
    spans = [span for doc in docs for span in spans_of(doc)]
    by_id = {(s.trace, s.id): s for s in spans}
    result = Result()
    calls: list[tuple[int, int, Span, dict[str, Any], str]] = []
    for index, span in enumerate(spans):
        if span.attributes.get(OP) != "execute_tool":
            result.other += 1
            continue
        tool = span.attributes.get(TOOL)
        args = _arguments(span.attributes.get(ARGS, {}))
        if not _tool_name(tool) or args is None:
            result.malformed += 1
            continue
        who = _agent(span, by_id) or agent
        if who is None:
            raise InputError(f"{span.where}: span {span.id} ({span.name}) has no "
                               f"{AGENT}, nor has any of its ancestors; give --agent")
        if span.start < 0 or span.start // 1_000_000_000 >= 253402300800:
            raise InputError(f"{span.where}: span {span.id} ({span.name}) has no valid "
                               "startTimeUnixNano")
        calls.append((span.start, index, span, args, who))
    calls.sort(key=lambda c: (c[0], c[1]))
    last_agent: dict[str, str] = {}  # task id -> the agent of its latest call
    for start, _, span, args, who in calls:
        ts = timestamp(start)
        event: dict[str, Any] = {"ts": ts, "event": "call"}
        if task_kind is not None:
            group = span.attributes.get(CONVERSATION)
            task = str(group) if group not in (None, "") else span.trace
            if task not in last_agent:
                result.tasks += 1
                result.events.append(({"ts": ts, "event": "task.start", "task": {
                    "id": task, "kind": task_kind, "params": task_params or {}},
                    "agent": who}, None))
            elif last_agent[task] != who:
                result.events.append(({"ts": ts, "event": "delegate", "task": task,
                                       "from": last_agent[task], "to": who}, None))
            last_agent[task] = who
            event["task"] = task
        event.update({"agent": who, "tool": span.attributes[TOOL], "args": args})
        result.events.append((event, _note(span)))
        result.calls += 1
    return result


def _tool_name(value: Any) -> bool:
    """A name a Request accepts: not empty, no whitespace, no control characters."""
    return isinstance(value, str) and value != "" and not any(
        c.isspace() or unicodedata.category(c) == "Cc" for c in value)


def _arguments(value: Any) -> dict[str, Any] | None:
    """The call's arguments: a JSON object (as text, or as a kvlist); None when malformed."""
    if isinstance(value, str):
        try:
            value = jsonio.loads(value)
        except jsonio.JSONInputError:
            return None
    return value if isinstance(value, dict) else None


def _agent(span: Span, by_id: dict[tuple[str, str], Span]) -> str | None:
    seen = set()
    current: Span | None = span
    while current is not None and current.id not in seen:
        agent = current.attributes.get(AGENT)
        if isinstance(agent, str) and agent:
            return agent
        seen.add(current.id)
        current = by_id.get((current.trace, current.parent)) if current.parent else None
    return None


def _note(span: Span) -> str:
    parts = [f"span {span.id} of trace {span.trace}"]
    call_id = span.attributes.get(CALL_ID)
    if call_id not in (None, ""):
        parts.append(f"tool call {call_id}")
    error = span.attributes.get(ERROR)
    if error not in (None, ""):
        parts.append(f"error {error}" + (f": {span.status_message}" if span.status_message
                                         else ""))
    # One line, whatever the ids hold: a line end would end the comment.
    return " ".join(", ".join(parts).split())

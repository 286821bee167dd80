"""Reading and replaying traces (FORMATS.md, "Trace"), one line at a time.

A trace is streamed: memory depends on the number of tasks, not on the length of the file.
Every problem (a malformed line, an unknown event, a call in a task never started, a timestamp
earlier than the one before) is reported as `file:line: message` and the replay goes on.

    >>> import agp                                                    # doctest: +SKIP
    >>> engine = agp.load("tests/data/spec")                          # doctest: +SKIP
    >>> [o.passed for o in agp.replay_trace(engine, "support.trace.jsonl")]  # doctest: +SKIP
    [True, True, True, True]
"""

from __future__ import annotations

import gc
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from agp.jsonio import JSONInputError, loads
from agp.limits import (
    MAX_LIST_LENGTH,
    MAX_REQUEST_DEPTH,
    MAX_REQUEST_NODES,
    MAX_STRING_LENGTH,
    check_request_value,
)
from agp.model import Decision, Request, RequestInput
from agp.runtime.events import (
    CallEvent,
    Delegate,
    Event,
    EventError,
    Expect,
    Observe,
    RequestEvent,
    TaskEnd,
    TaskStart,
    expected_ttl,
    parse_event,
)
from agp.runtime.tasks import TaskError, TaskRuntime
from agp.store import StoreUnavailable
from agp.store.memory import MemoryStore

if TYPE_CHECKING:
    from agp.engine import Engine

DECIDED = ("call", "request")


class Line(NamedTuple):
    """One line of a trace as read: its text (without the newline) and, if valid, its event.
    (A tuple: one is built per line, in a third of a frozen dataclass's time.)"""

    file: str
    line: int
    text: str
    event: Event | None = None
    value: dict[str, Any] | None = None  # the decoded JSON object
    problem: str | None = None
    column: int | None = None  # where in the line the problem is, when that is known


@dataclass(slots=True)
class Outcome:
    """What replaying one `call` or `request` event gave, or one problem line.

    `passed` is False for a problem or an unmet expectation, True otherwise (also when the event
    carries no `expect`). `problem` is the message of a malformed line; `mismatches` say which
    expected fields an otherwise valid event did not meet.
    """

    file: str
    line: int
    event: str | None  # "call" or "request" (None for a line that is not an event)
    request: RequestInput | None = None
    decision: Decision | None = None
    expect: Expect | dict[str, Any] | None = None  # a dict: as `agp test --update` wrote it
    passed: bool = True
    problem: str | None = None
    mismatches: list[str] = field(default_factory=list)
    text: str = ""  # the line as written (for `--update`)
    column: int | None = None  # of a problem, when it has one (a JSON syntax error)

    @property
    def where(self) -> str:
        """`file:line`, or `file:line:col` for a problem at a known column."""
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")

    @property
    def message(self) -> str | None:
        """The problem, or what did not match the expectation, or None when it passed."""
        if self.problem is not None:
            return self.problem
        return "; ".join(self.mismatches) if self.mismatches else None

    @property
    def tool(self) -> str | None:
        req = self.request
        if isinstance(req, Request):
            return req.tool
        tool = req.get("tool") if isinstance(req, dict) else None
        return tool if isinstance(tool, str) else None

    @property
    def agent(self) -> str | None:
        req = self.request
        if isinstance(req, Request):
            return req.agent.id
        if isinstance(req, dict) and isinstance(req.get("agent"), dict):
            ident = req["agent"].get("id")
            return ident if isinstance(ident, str) else None
        return None

    @property
    def name(self) -> str:
        """The name of the case, as `-k` and JUnit see it: `file:line event tool`."""
        return " ".join(p for p in (self.where, self.event, self.tool) if p)


class TraceError(OSError):
    """A trace file or directory that cannot be read at all."""


def trace_files(paths: Iterable[str | Path], *, empty_ok: bool = False,
                ) -> tuple[list[Path], list[str]]:
    """The trace files of files and directories (`*.jsonl`, recursive, sorted) and problems.

    A path that does not exist is a problem; so is a directory without traces, unless
    `empty_ok` (`agp test` says itself that it found nothing to test).
    """
    files: list[Path] = []
    problems: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.jsonl") if q.is_file())
            if not found and not empty_ok:
                problems.append(f"{p}: no *.jsonl traces in this directory")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            problems.append(f"{p}: no such file or directory")
    return files, problems


def read_trace(path: str | Path, name: str | None = None,
               part: tuple[int, int] | None = None) -> Iterator[Line]:
    """The non-blank, non-comment lines of a trace, parsed, one at a time.

    Raises TraceError when the file cannot be opened; a line that cannot be decoded or parsed
    comes back with its `problem`. With `part`, (k, n): only the lines that the k-th of n
    processes sharing the trace replays (`part_of`); the others are decoded, to find their
    task, and skipped.
    """
    name = name if name is not None else str(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops
    except OSError as exc:
        raise TraceError(f"{name}: cannot read: {exc.strerror or exc}") from None
    with handle:
        try:
            for number, raw in enumerate(handle, 1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    if part is None or part_of(None, number, part[1]) == part[0]:
                        yield Line(name, number, "", problem=f"invalid UTF-8 at byte {exc.start}")
                    continue
                if number == 1:
                    text = text.removeprefix("\ufeff")
                stripped = text.strip()
                if not stripped or stripped.startswith("//"):
                    continue
                line = _parse_line(name, number, text.rstrip("\r\n"), stripped, part)
                if line is not None:
                    yield line
        except OSError as exc:  # a directory given as a file, a read error mid-way
            raise TraceError(f"{name}: cannot read: {exc.strerror or exc}") from None


def _parse_line(name: str, number: int, text: str, stripped: str,
                part: tuple[int, int] | None = None) -> Line | None:
    try:
        value = loads(stripped)
    except JSONInputError as exc:
        if part is not None and part_of(None, number, part[1]) != part[0]:
            return None
        indent = len(text) - len(text.lstrip())
        column = exc.column + indent if exc.column is not None else None
        return Line(name, number, text, problem=exc.message, column=column)
    if part is not None and part_of(value, number, part[1]) != part[0]:
        return None
    try:
        event = parse_event(value)
    except EventError as exc:
        return Line(name, number, text, value=value if isinstance(value, dict) else None,
                    problem=str(exc))
    return Line(name, number, text, event, value)


def part_of(value: object, number: int, parts: int) -> int:
    """Which of `parts` processes replays line `number`, whose decoded JSON is `value`, when
    they share one trace (`agp test --jobs`): every event of a task goes to the same one (by a
    checksum of the task's id, the same in every process), so that each task's lifecycle is
    replayed whole in one process; the other lines, which touch no task, by their number
    (`value` None: a line that could not be decoded)."""
    task = value.get("task") if type(value) is dict else None
    if type(task) is dict:  # task.start
        task = task.get("id")
    if type(task) is str:
        return zlib.crc32(task.encode("utf-8", "surrogatepass")) % parts
    # Fibonacci hashing: traces repeat a pattern of events every few lines, which the line's
    # number modulo `parts` would send to one process.
    return ((number * 0x9E3779B1) & 0xFFFFFFFF) * parts >> 32


def replay_trace(engine: Engine, path: str | Path, *, name: str | None = None,
                 runtime: TaskRuntime | None = None) -> Iterator[Outcome]:
    """Replay one trace file (or every `*.jsonl` under a directory) with its task lifecycle.

    Yields one Outcome per `call` and `request` event, and one per problem line (with
    `problem` set); a file that cannot be read yields a single problem Outcome at line 0.
    Each file gets its own TaskRuntime, over a memory store of its own, unless `runtime` is
    given.
    """
    path = Path(path)
    if path.is_dir():
        files, problems = trace_files([path])
        for problem in problems:
            yield Outcome(str(path), 0, None, passed=False, problem=problem)
        for f in files:
            yield from replay_trace(engine, f, runtime=runtime)
        return
    try:
        yield from Replay(engine, runtime).run(read_trace(path, name))
    except TraceError as exc:
        yield Outcome(name if name is not None else str(path), 0, None, passed=False,
                      problem=str(exc).split(": ", 1)[1])


class Replay:
    """Replays the lines of one trace through a TaskRuntime, checking the time order."""

    def __init__(self, engine: Engine, runtime: TaskRuntime | None = None) -> None:
        self.engine = engine
        # A trace is a world of its own: its tasks live in a memory store of its own, so that
        # two traces (or two runs of one) may use the same task ids.
        self.runtime = runtime if runtime is not None else TaskRuntime(engine, MemoryStore())
        self.last_ts: datetime | None = None

    def run(self, lines: Iterable[Line]) -> Iterator[Outcome]:
        for line in lines:
            outcome = self.step(line)
            if outcome is not None:
                yield outcome

    def step(self, line: Line) -> Outcome | None:
        event, value = line.event, line.value
        if event is None or value is None:  # a line without an event says why (`problem`)
            kind = value.get("event") if value else None
            return _problem(line, kind if kind in DECIDED else None, line.problem, line.column)
        kind = event.event
        if self.last_ts is not None and event.ts < self.last_ts:
            return _problem(line, kind if kind in DECIDED else None,
                            f"timestamp {value['ts']} is earlier than the event before "
                            f"({self.last_ts.isoformat().replace('+00:00', 'Z')}); "
                            "a trace is in time order")
        self.last_ts = event.ts
        rt = self.runtime
        try:
            if isinstance(event, CallEvent):
                exceeded = check_request_value(value) if _may_exceed(line.text) else None
                if exceeded is not None:  # too big to build: denied as a whole request would be
                    raw = {k: v for k, v in value.items()
                           if k not in ("ts", "event", "task", "expect")}
                    return self._checked(line, kind, raw, self.engine.decide(raw), event.expect)
                request, decision = rt.call(event)
                return self._checked(line, kind, request, decision, event.expect)
            if isinstance(event, RequestEvent):
                decision = self.engine.decide(event.request, task_ended=event.task_ended)
                return self._checked(line, kind, event.request, decision, event.expect)
            if isinstance(event, TaskStart):
                rt.apply_start(event)
            elif isinstance(event, Delegate):
                rt.apply_delegate(event)
            elif isinstance(event, Observe):
                rt.apply_observe(event)
            elif isinstance(event, TaskEnd):
                rt.apply_end(event)
        except (TaskError, StoreUnavailable) as exc:
            return _problem(line, kind if kind in DECIDED else None, str(exc))
        return None

    @staticmethod
    def _checked(line: Line, kind: str, request: RequestInput, decision: Decision,
                 expect: Expect | None) -> Outcome:
        mismatches = check_expect(expect, decision) if expect is not None else []
        return Outcome(line.file, line.line, kind, request, decision, expect,
                       passed=not mismatches, mismatches=mismatches, text=line.text)


def _may_exceed(text: str) -> bool:
    """Whether a line could break a request limit at all: a short, shallow line cannot."""
    return (len(text) >= min(MAX_LIST_LENGTH, MAX_STRING_LENGTH, MAX_REQUEST_NODES)
            or text.count("[") + text.count("{") >= MAX_REQUEST_DEPTH - 2)


def _problem(line: Line, kind: str | None, message: str | None,
             column: int | None = None) -> Outcome:
    return Outcome(line.file, line.line, kind, passed=False, problem=message, text=line.text,
                   column=column)


@contextmanager
def rare_full_collections() -> Iterator[None]:
    """For a process that replays long traces (`agp test`), not for a library's caller: a
    replay keeps what its tasks hold (their records and sessions) to its end, and each full
    collection of the cyclic garbage collector rescans all of it, about a tenth of a long
    replay's time. Meanwhile only every 1,000th collection of the older young generation is
    full (Python's own rule, a full one only once the old objects grew by a quarter, still
    holds); the young generations, where an event's garbage dies, are collected as always."""
    threshold = gc.get_threshold()
    gc.set_threshold(threshold[0], threshold[1], max(threshold[2], 1000))
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


def check_expect(expect: Expect, decision: Decision) -> list[str]:
    """What in `expect` the decision does not meet (empty when it meets all of it)."""
    if isinstance(expect, str):  # the common case, without building a model
        if expect == decision.decision:
            return []
        return [f"decision: expected {expect}, got {decision.decision}"]
    out = []
    if expect.decision is not None and expect.decision != decision.decision:
        out.append(f"decision: expected {expect.decision}, got {decision.decision}")
    ttl = expected_ttl(expect)  # None exactly when expect.ttl is
    if ttl is not None and expect.ttl is not None and ttl != decision.ttl:
        shown = ttl if ttl >= 0 else expect.ttl.total_seconds()
        out.append(f"ttl: expected {shown}, got {decision.ttl}")
    if expect.rules is not None:
        missing = [r for r in expect.rules if r not in decision.rules]
        if missing:
            out.append(f"rules: expected {', '.join(missing)} among "
                       f"[{', '.join(decision.rules)}]")
    if expect.reasons is not None:
        missing = [r for r in expect.reasons if r not in decision.reasons]
        if missing:
            out.append("reasons: expected " + ", ".join(repr(r) for r in missing)
                       + " among [" + ", ".join(repr(r) for r in decision.reasons) + "]")
    return out

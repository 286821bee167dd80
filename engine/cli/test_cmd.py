"""`agp test -p POLICY TRACE_OR_DIR...`: replay traces and check every `expect`."""

from __future__ import annotations

import fnmatch
import heapq
import json
import multiprocessing
import os
import sys
import xml.etree.ElementTree as ET
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import click

from agp.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    Progress,
    command_engine,
    echo,
    fail,
    file_size,
    format_option,
    identity_options,
    identity_values,
    load_engine,
    policy_option,
    progress,
    run_or_watch,
    watch_option,
)
from agp.engine import Engine
from agp.envelope import CODES as ENVELOPE_CODES
from agp.loader import check_paths, policy_files
from agp.model import Decision
from agp.runtime import Outcome, Replay, TraceError, read_trace, trace_files
from agp.runtime.events import Expect, ExpectSpec, expected_ttl
from agp.runtime.golden import expect_value, rewrite_lines, with_expect
from agp.runtime.trace import rare_full_collections


@click.command("test")
@identity_options
@policy_option
@click.argument("traces", nargs=-1, type=click.Path())
@click.option("-k", "pattern", metavar="PATTERN",
              help="Only check cases whose name (`file:line event tool`) contains PATTERN "
                   "(a glob when it has * ? or [).")
@click.option("--junit", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the results as JUnit XML (GitLab, Jenkins).")
@click.option("--update", is_flag=True,
              help="Write the actual decision into every failing or missing `expect` (golden "
                   "traces), keeping the rest of each line as it is.")
@click.option("--coverage", is_flag=True,
              help="Report which rules and envelope checks decided some call.")
@click.option("--min-coverage", type=click.FloatRange(0, 100), metavar="PERCENT",
              help="Fail (exit 1) when fewer than PERCENT of the rules decided some call.")
@click.option("--allow-empty", is_flag=True,
              help="Pass (exit 0) even when no expectation was checked.")
@click.option("-v", "--verbose", is_flag=True, help="Also list the cases that pass.")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=1, show_default=True,
              metavar="N", help="Replay the trace files in N processes (0: one per CPU); the "
                                "output is the same as with 1.")
@watch_option("a policy file or a trace")
@format_option("text", "json")
def command(policies: tuple[str, ...], traces: tuple[str, ...], pattern: str | None,
            junit: str | None, update: bool, coverage: bool, min_coverage: float | None,
            allow_empty: bool, verbose: bool, jobs: int, watch: bool, fmt: str) -> None:
    """Replay TRACES (files, or directories of *.jsonl) and check every `expect`.

    Prints each failure with its file:line, the expected and the actual decision and the rules
    that decided; the last line is `N passed, M failed`. A malformed line is reported as
    `file:line: message`, counts as failed, and the other lines are still checked. A decision
    log (`Engine.log_decisions`) is a trace: testing it reproduces the logged decisions.

    Exit status: 0 all pass; 1 any fail, coverage below --min-coverage, or nothing checked (no
    trace, no `expect`, a -k that matches nothing) without --allow-empty; 2 bad usage or input
    (a missing path, a policy set that does not load, an unreadable trace, a malformed line).
    """

    if jobs != 1:
        # --update rewrites trace files as it goes and --watch runs forever: neither fits
        # work spread over processes. Refused whatever the number of CPUs, so that a command
        # line that works on one machine works on every other.
        for given, name in ((update, "--update"), (watch, "--watch")):
            if given:
                fail(f"--jobs cannot be combined with {name}; run it with --jobs 1")
        jobs = jobs or _cpus()

    def run() -> None:
        _run(policies, traces, pattern, junit, update, coverage, min_coverage, allow_empty,
             verbose, fmt, jobs)

    def watched() -> list[Path]:
        return [*policy_files(policies)[0], *trace_files(traces, empty_ok=True)[0]]

    run_or_watch(run, watched, watch)


def _run(policies: tuple[str, ...], traces: tuple[str, ...], pattern: str | None,
         junit: str | None, update: bool, coverage: bool, min_coverage: float | None,
         allow_empty: bool, verbose: bool, fmt: str, jobs: int = 1) -> None:
    engine = load_engine(policies, policy_errors=EXIT_USAGE)
    files, missing = trace_files(traces, empty_ok=True)
    run = Run(engine, pattern, text=fmt == "text", verbose=verbose,
              coverage=set() if coverage or min_coverage is not None else None,
              keep=bool(junit) or fmt == "json")
    for problem in missing:
        run.bad_input(problem)
    total = sum(file_size(f) for f in files)
    with progress(total, "replaying") as bar:
        if jobs > 1 and len(files) > 1:
            _in_processes(run, policies, files, min(jobs, len(files)), bar)
        elif jobs > 1 and files and _splits(run, files[0]):
            _split(run, policies, files[0], jobs, bar)
        else:
            for f in files:
                run.file(f, bar, update)
    if junit:
        try:
            write_junit(junit, run)
        except OSError as exc:
            fail(f"cannot write {junit}: {exc.strerror or exc}")
    below = False
    if run.coverage is not None:
        below = run.report_coverage(min_coverage)
    if fmt == "json":
        echo(json.dumps(run.json(), indent=2))
    else:
        echo(f"{run.passed} passed, {run.failed} failed",
             style="error" if run.failed else "ok")
    if run.bad:
        sys.exit(EXIT_USAGE)
    empty = None if run.passed or run.failed else _nothing_checked(traces, files, run, pattern)
    if empty is not None:
        if allow_empty:
            echo(f"note: {empty} (--allow-empty: not a failure)", err=True, style="dim")
        else:
            echo(f"agp: error: {empty}; a test run must check something (--allow-empty "
                 "accepts this)", err=True, style="error")
            sys.exit(EXIT_FAIL)
    sys.exit(EXIT_FAIL if run.failed or below else EXIT_OK)


def _nothing_checked(traces: tuple[str, ...], files: list[Path], run: Run,
                     pattern: str | None) -> str:
    """Why a run that checked no expectation checked none."""
    if not traces:
        return "no traces given: nothing was tested"
    if not files:
        return "no *.jsonl traces in " + ", ".join(traces) + ": nothing was tested"
    if pattern is not None and run.cases_seen:
        return f"-k {pattern!r} matches none of the {run.cases_seen} case(s): nothing was tested"
    return "the traces carry no `expect`: nothing was tested (add expectations, or write the " \
           "current decisions with --update)"


# ---- --jobs: trace files spread over processes ------------------------------------------------
#
# Each trace file is a world of its own (its tasks live in a store of its own), so files can be
# replayed in any process. A worker builds the same engine as the parent (the same sources and
# identity options; the policy hash is compared), tests one file at a time with its output
# recorded, and the parent takes the files' results back in the order of `files` (merge): the
# output, the summary, --junit and --format json are those of one process.


@dataclass(frozen=True)
class FilePart:
    """What testing one file in a worker gave: Run's counters, cases and printed lines."""

    name: str
    lines: list[tuple[str, bool, str | None]]  # (text, err, style), as Run.out was called
    passed: int
    failed: int
    bad: bool
    cases_seen: int
    cases: list[Outcome]
    coverage: set[str]


@dataclass(frozen=True)
class _Job:
    """What a worker needs to test files as the parent would (picklable)."""

    policies: tuple[str, ...]
    identity: dict[str, str]  # identity_values() of the parent
    policy_hash: str
    pattern: str | None
    text: bool
    verbose: bool
    coverage: bool
    keep: bool = False  # Run.keep


class _WorkerError(Exception):
    """The worker could not build the parent's engine (its files changed under the run)."""


_job: _Job | None = None  # this worker's job (set by _start)
_engine: Engine | None = None  # built on the worker's first file


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may run on (Linux)
    except AttributeError:
        return os.cpu_count() or 1


def _in_processes(run: Run, policies: tuple[str, ...], files: list[Path], jobs: int,
                  bar: Progress) -> None:
    with _pool(run, policies, jobs) as pool:
        # `map` yields in the order of `files`, whichever worker finishes first.
        for f, part in zip(files, pool.map(_test_file, map(str, files)), strict=True):
            run.merge(part)
            bar.advance(file_size(f))


@contextmanager
def _pool(run: Run, policies: tuple[str, ...], jobs: int) -> Iterator[ProcessPoolExecutor]:
    """`jobs` worker processes that test as `run` does; a worker's failure ends the command."""
    job = _Job(policies, identity_values(), run.engine.policy_hash, run.pattern, run.text,
               run.verbose, run.coverage is not None, run.keep)
    try:
        with ProcessPoolExecutor(jobs, mp_context=_processes(), initializer=_start,
                                 initargs=(job,)) as pool:
            yield pool
    except _WorkerError as exc:
        fail(str(exc))
    except BrokenProcessPool as exc:
        fail(f"a --jobs worker process died ({exc}); run with --jobs 1")


# ---- --jobs on one trace: its tasks spread over processes ---------------------------------------
#
# With a single trace file, the workers share it: each one decodes every line (to find its task)
# and replays only the lines of its own tasks (agp.runtime.trace.part_of); a task's events all
# go to one worker, and a trace's tasks are independent in the trace's memory store. What one
# process would also check is the time order of the whole trace: each worker returns the time of
# every valid event it read, and when the merged times are out of order anywhere (a trace with a
# problem, rare), the trace is replayed again in this process. Otherwise the outcomes' printed
# lines and cases are merged by line number: the output is that of one process.

# A smaller trace is replayed in one process: starting the workers (each loads the policy set)
# costs more than it saves.
SPLIT_BYTES = 4 << 20


def _splits(run: Run, path: Path) -> bool:
    """Whether one trace is worth spreading over processes, and can be: not when the engine
    signs grants (their ledger is shared by the trace's tasks)."""
    return run.engine.stages.grant is None and file_size(path) >= SPLIT_BYTES


@dataclass(frozen=True)
class TracePart:
    """What replaying one part of a trace in a worker gave."""

    part: FilePart
    at: list[int]  # the trace line of each of part.lines
    events: array[int]  # the line of every valid event the worker read (all of them)
    times: array[int]  # and its time, in microseconds since 1970
    readable: bool  # False: the file could not be read (the run then tells why)


def _split(run: Run, policies: tuple[str, ...], path: Path, jobs: int, bar: Progress) -> None:
    with _pool(run, policies, jobs) as pool:
        parts = list(pool.map(_test_part, [str(path)] * jobs, range(jobs), [jobs] * jobs))
    if not all(p.readable for p in parts) or not _in_time_order(parts):
        run.file(path, bar, update=False)  # the one-process run says what is wrong
        return
    by_line = heapq.merge(*(zip(p.at, p.part.lines, strict=True) for p in parts), key=_first)
    run.merge(FilePart(
        str(path), [line for _, line in by_line],
        sum(p.part.passed for p in parts), sum(p.part.failed for p in parts),
        any(p.part.bad for p in parts), sum(p.part.cases_seen for p in parts),
        list(heapq.merge(*(p.part.cases for p in parts), key=_line)),
        set().union(*(p.part.coverage for p in parts))))
    bar.advance(file_size(path))


def _in_time_order(parts: list[TracePart]) -> bool:
    last = None
    for _, t in heapq.merge(*(zip(p.events, p.times, strict=True) for p in parts)):
        if last is not None and t < last:
            return False
        last = t
    return True


def _first(item: tuple[int, object]) -> int:
    return item[0]


def _line(outcome: Outcome) -> int:
    return outcome.line


def _test_part(name: str, k: int, n: int) -> TracePart:
    job, engine = _worker()
    at: list[int] = []
    lines: list[tuple[str, bool, str | None]] = []
    line = 0  # the trace line whose outcome is being printed

    def record(text: str = "", *, err: bool = False, style: str | None = None) -> None:
        at.append(line)
        lines.append((text, err, style))

    part = Run(engine, job.pattern, job.text, job.verbose,
               coverage=set() if job.coverage else None, keep=job.keep, out=record)
    cases: list[Outcome] = []
    keep: Callable[[Outcome], object] = cases.append if job.keep else _drop
    times: tuple[array[int], array[int]] = (array("q"), array("q"))
    readable = True
    try:
        for o in part._replay(Path(name), Progress(0, ""), (k, n), times):
            line = o.line
            part.case(o, keep, False, {})
    except TraceError:
        readable = False
    return TracePart(FilePart(name, lines, part.passed, part.failed, part.bad, part.cases_seen,
                              cases, part.coverage or set()), at, times[0], times[1], readable)


def _processes() -> BaseContext:
    # Not `fork`: a process forked while another thread holds a lock (a progress bar's, a
    # logging handler's) can hang. A fork server starts clean; elsewhere, spawn.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _start(job: _Job) -> None:
    global _job
    _job = job


def _worker() -> tuple[_Job, Engine]:
    """This worker's job and engine (built on its first task)."""
    global _engine
    job = _job
    assert job is not None, "_start runs first in every worker"
    if _engine is None:
        policy, _ = check_paths(list(job.policies))
        if policy is None or policy.hash != job.policy_hash:
            raise _WorkerError("the policy set changed while the tests ran; run them again")
        try:
            _engine = command_engine(policy, job.identity)
        except ValueError as exc:  # a key or trust bundle that changed since the parent read it
            raise _WorkerError(str(exc)) from None
    return job, _engine


def _test_file(name: str) -> FilePart:
    job, engine = _worker()
    lines: list[tuple[str, bool, str | None]] = []

    def record(text: str = "", *, err: bool = False, style: str | None = None) -> None:
        lines.append((text, err, style))

    part = Run(engine, job.pattern, job.text, job.verbose,
               coverage=set() if job.coverage else None, keep=job.keep, out=record)
    part.file(Path(name), Progress(0, ""), update=False)
    return FilePart(name, lines, part.passed, part.failed, part.bad, part.cases_seen,
                    part.cases.get(name, []), part.coverage or set())


@dataclass
class Run:
    engine: Engine
    pattern: str | None
    text: bool
    verbose: bool
    coverage: set[str] | None  # the rules and envelope codes that decided; None: not asked
    passed: int = 0
    failed: int = 0
    bad: bool = False
    cases_seen: int = 0  # the cases found, before -k chooses among them
    # Whether `cases` keeps every checked case's outcome: only --junit and --format json read
    # them, and an outcome holds its request (with the task's session), so a long trace tested
    # for text keeps none.
    keep: bool = False
    cases: dict[str, list[Outcome]] = field(default_factory=dict)  # per file, for JUnit/JSON
    coverage_json: dict[str, object] | None = None  # set by report_coverage
    # Where the run prints: `echo`, or in a --jobs worker a recorder whose lines the parent
    # process echoes in file order (merge), so that the output is that of one process.
    out: Callable[..., None] = echo

    def bad_input(self, message: str) -> None:
        self.bad = True
        self.failed += 1
        self.out(f"{message}", err=not self.text, style="error")

    def merge(self, part: FilePart) -> None:
        """Take in the result of one file tested in a --jobs worker, as `file` would have."""
        for text, err, style in part.lines:
            self.out(text, err=err, style=style)
        self.passed += part.passed
        self.failed += part.failed
        self.bad = self.bad or part.bad
        self.cases_seen += part.cases_seen
        if self.keep:
            self.cases.setdefault(part.name, []).extend(part.cases)
        if self.coverage is not None:
            self.coverage.update(part.coverage)

    def selected(self, outcome: Outcome) -> bool:
        if self.pattern is None or outcome.problem is not None:
            return True
        name = outcome.name
        if any(c in self.pattern for c in "*?["):
            return fnmatch.fnmatchcase(name, self.pattern) or fnmatch.fnmatchcase(
                name, f"*{self.pattern}*")
        return self.pattern.lower() in name.lower()

    def file(self, path: Path, bar: Progress, update: bool) -> None:
        name = str(path)
        keep: Callable[[Outcome], object] = \
            self.cases.setdefault(name, []).append if self.keep else _drop
        updates: dict[int, str] = {}
        try:
            for o in self._replay(path, bar):
                self.case(o, keep, update, updates)
        except TraceError as exc:
            self.bad_input(str(exc))
            return
        if updates:
            try:
                rewrite_lines(path, updates)
            except OSError as exc:
                self.bad_input(f"{name}: cannot update: {exc.strerror or exc}")
                return
            self.out(f"{name}: updated {len(updates)} expectation(s)", err=True)

    def case(self, o: Outcome, keep: Callable[[Outcome], object], update: bool,
             updates: dict[int, str]) -> None:
        """Count, keep and print one outcome of a trace (with `update`, note its new line)."""
        if o.decision is not None and (o.expect is not None or update):
            self.cases_seen += 1
        if not self.selected(o):
            return
        if o.decision is not None and self.coverage is not None:
            self.coverage.update(o.decision.rules)
        d = o.decision
        if o.problem is not None or d is None:  # a line that is not a decided event
            self.bad = True
            self.failed += 1
            keep(o)
            self.out(f"{o.where}: {o.problem}", err=not self.text, style="error")
            return
        if update and not (o.expect is not None and o.passed):
            # A failing or missing `expect` gets the actual decision; one that holds is left
            # as its author wrote it.
            new = expect_value(o.expect, d)
            text = _with_expect(o.text, new)
            if text is not None and text != o.text:
                updates[o.line] = text
            self.passed += 1
            keep(_updated(o, new))
            return
        if o.expect is None and not update:
            return
        keep(o)
        if o.passed:
            self.passed += 1
            if self.verbose and self.text:
                self.out(f"{o.where}: PASS {_describe(o)}", style="ok")
        else:
            self.failed += 1
            if self.text:
                self.report_failure(o, d)

    def _replay(self, path: Path, bar: Progress, part: tuple[int, int] | None = None,
                times: tuple[array[int], array[int]] | None = None) -> Iterator[Outcome]:
        """The outcomes of a trace's lines (with `part`, of that part's: `read_trace`); with
        `times`, the line and the time (in microseconds) of every valid event go into them."""
        replay = Replay(self.engine)
        with rare_full_collections():
            for line in read_trace(path, part=part):
                bar.advance(len(line.text) + 1)
                if times is not None and line.event is not None:
                    times[0].append(line.line)
                    times[1].append((line.event.ts - _EPOCH) // _MICROSECOND)
                outcome = replay.step(line)
                if outcome is not None:
                    yield outcome

    def report_failure(self, o: Outcome, d: Decision) -> None:
        self.out(f"{o.where}: FAIL {_describe(o)}", style="error")
        self.out(f"    expected: {expect_text(o.expect)}")
        self.out(f"    actual:   {d.decision}, ttl {d.ttl}, rules [{', '.join(d.rules)}]")
        for reason in d.reasons:
            self.out(f"    because:  {reason}")
        for error in d.errors:
            self.out(f"    error:    {error}", style="warning")
        for m in o.mismatches:
            self.out(f"    - {m}", style="dim")

    def report_coverage(self, minimum: float | None) -> bool:
        """Print the coverage report; True when it is below `minimum`."""
        policy = self.engine.policy
        covered = self.coverage or set()  # (reported only when asked for)
        rules = [r.name for r in policy.rules]
        hit = [r for r in rules if r in covered]
        missed = [r for r in policy.rules if r.name not in covered]
        checks = [c for c in ENVELOPE_CODES if c in covered]
        percent = 100.0 * len(hit) / len(rules) if rules else 100.0
        out = err = not self.text
        echo(f"coverage: {len(hit)} of {len(rules)} rules decided some call ({percent:.1f}%)",
             err=out, style="bold")
        for r in missed:
            echo(f"  not exercised: {r.name} ({r.decl.name.span})", err=err, style="warning")
        echo(f"coverage: {len(checks)} of {len(ENVELOPE_CODES)} envelope checks fired: "
             + (", ".join(checks) or "none"), err=out, style="bold")
        unfired = [c for c in ENVELOPE_CODES if c not in covered]
        if unfired:
            echo("  not exercised: " + ", ".join(unfired), err=err, style="dim")
        self.coverage_json = {"rules": {"covered": hit, "missed": [r.name for r in missed],
                                        "percent": round(percent, 2)},
                              "envelope": {"covered": checks, "missed": unfired}}
        if minimum is not None and percent < minimum:
            echo(f"coverage {percent:.1f}% is below --min-coverage {minimum:g}%", err=True,
                 style="error")
            return True
        return False

    def json(self) -> dict[str, object]:
        results = [outcome_json(o) for cases in self.cases.values() for o in cases]
        doc: dict[str, object] = {"passed": self.passed, "failed": self.failed,
                                  "results": results}
        if self.coverage_json is not None:
            doc["coverage"] = self.coverage_json
        return doc


def _drop(outcome: Outcome) -> None:
    """Where the outcomes of a run that does not keep them go."""


def _with_expect(line: str, expect: str | dict[str, Any]) -> str | None:
    """The trace line with its `expect` replaced, or None when it is not one JSON object."""
    try:
        return with_expect(line, expect)
    except ValueError:
        return None


def _updated(o: Outcome, new: str | dict[str, Any]) -> Outcome:
    return Outcome(o.file, o.line, o.event, o.request, o.decision, new, True, text=o.text)


def _describe(o: Outcome) -> str:
    parts = [o.event or "line"]
    if o.tool:
        parts.append(o.tool)
    if o.agent:
        parts.append(f"by {o.agent}")
    return " ".join(parts)


def expect_text(expect: Expect | dict[str, Any] | None) -> str:
    if isinstance(expect, str):
        return expect
    if expect is None:
        return "anything"
    if isinstance(expect, dict):
        expect = ExpectSpec.model_validate(expect)
    parts = []
    if expect.decision is not None:
        parts.append(expect.decision)
    ttl = expected_ttl(expect)  # None exactly when expect.ttl is
    if ttl is not None and expect.ttl is not None:
        parts.append(f"ttl {ttl if ttl >= 0 else expect.ttl.total_seconds()}")
    if expect.rules is not None:
        parts.append(f"rules including [{', '.join(expect.rules)}]")
    if expect.reasons is not None:
        parts.append("reasons including [" + ", ".join(map(repr, expect.reasons)) + "]")
    return ", ".join(parts) or "anything"


def _expect_json(expect: Expect | dict[str, Any] | None) -> object:
    if expect is None or isinstance(expect, (str, dict)):
        return expect
    doc = expect.model_dump(exclude_none=True)
    if "ttl" in doc:
        doc["ttl"] = expected_ttl(expect)
    return doc


def outcome_json(o: Outcome) -> dict[str, object]:
    return {"file": o.file, "line": o.line, "column": o.column, "event": o.event, "tool": o.tool,
            "passed": o.passed, "expect": _expect_json(o.expect),
            "decision": o.decision.to_json() if o.decision is not None else None,
            "problem": o.problem, "mismatches": o.mismatches}


def write_junit(path: str, run: Run) -> None:
    """JUnit XML as GitLab and Jenkins read it: a suite per trace file, a case per `expect`."""
    root = ET.Element("testsuites", name="agp test")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for file, cases in run.cases.items():
        failures = sum(1 for c in cases if c.problem is None and not c.passed)
        errors = sum(1 for c in cases if c.problem is not None)
        suite = ET.SubElement(root, "testsuite", name=file, tests=str(len(cases)),
                              failures=str(failures), errors=str(errors), skipped="0",
                              time="0")
        for key, value in (("tests", len(cases)), ("failures", failures), ("errors", errors)):
            totals[key] += value
        for c in cases:
            case = ET.SubElement(suite, "testcase", name=c.name, classname=_classname(file),
                                 file=file, line=str(c.line), time="0")
            if c.problem is not None:
                err = ET.SubElement(case, "error", message=c.problem, type="trace")
                err.text = f"{c.where}: {c.problem}"
            elif not c.passed and (d := c.decision) is not None:
                fail_el = ET.SubElement(case, "failure", message="; ".join(c.mismatches),
                                        type="expectation")
                fail_el.text = "\n".join([
                    f"{c.where}: {_describe(c)}",
                    f"expected: {expect_text(c.expect)}",
                    f"actual:   {d.decision}, ttl {d.ttl}, rules [{', '.join(d.rules)}]",
                    *(f"because:  {r}" for r in d.reasons),
                    *(f"error:    {e}" for e in d.errors),
                ])
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _classname(file: str) -> str:
    name = Path(file).name
    for suffix in (".jsonl", ".trace"):
        name = name.removesuffix(suffix)
    return name


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

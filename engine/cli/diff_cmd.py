"""`agp diff -p OLD -p NEW TRACE...`: what a policy change does to recorded traffic."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from agp.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    Progress,
    echo,
    fail,
    file_size,
    format_option,
    identity_options,
    load_engine,
    make_policy_option,
    progress,
)
from agp.engine import Engine
from agp.model import Decision
from agp.runtime import Replay, TraceError, read_trace, trace_files

GROUPS = {
    "newly allowed": "calls denied or asked before, allowed now",
    "newly denied": "calls allowed or asked before, denied now",
    "ask changes": "calls that need a human now, or no longer do",
    "ttl changes": "same decision, different grant TTL",
    "rule changes": "same decision and TTL, decided by different rules",
}


@dataclass(frozen=True, slots=True)
class Change:
    file: str
    line: int
    event: str | None
    tool: str | None
    agent: str | None
    old: Decision
    new: Decision

    @property
    def group(self) -> str:
        old, new = self.old.decision, self.new.decision
        if old != new:
            if new == "allow":
                return "newly allowed"
            if new == "deny":
                return "newly denied"
            return "ask changes"
        return "ttl changes" if self.old.ttl != self.new.ttl else "rule changes"


def changed(old: Decision, new: Decision) -> bool:
    return (old.decision, old.ttl, old.rules) != (new.decision, new.ttl, new.rules)


@click.command("diff")
@identity_options
@make_policy_option(True, "Give it twice: the OLD policy set, then the NEW one (file or "
                          "directory).")
@click.argument("traces", nargs=-1, required=True, type=click.Path())
@format_option("text", "json")
def command(policies: tuple[str, ...], traces: tuple[str, ...], fmt: str) -> None:
    """Replay TRACES under the OLD and the NEW policy set and list every call that changes.

    A call changes when its decision, its ttl or the rules that decided it differ. Changes are
    grouped (newly allowed, newly denied, ask changes, ttl changes, rule changes) with counts.
    A malformed line goes to stderr as `file:line: message`. Exit status: 0 nothing differs,
    1 something differs, 2 bad usage or input (a missing path, a policy set that does not load,
    an unreadable trace, a malformed line).
    """
    if len(policies) != 2:
        fail("give exactly two policy sets: -p OLD -p NEW")
    old_engine = load_engine([policies[0]], policy_errors=EXIT_USAGE)
    new_engine = load_engine([policies[1]], policy_errors=EXIT_USAGE)
    files, missing = trace_files(traces)
    bad = bool(missing)
    for problem in missing:
        echo(problem, err=True, style="error")
    changes: list[Change] = []
    compared = 0
    with progress(sum(file_size(f) for f in files), "replaying") as bar:
        for f in files:
            try:
                n, found, problems = diff_file(old_engine, new_engine, f, bar)
            except TraceError as exc:
                bad = True
                echo(str(exc), err=True, style="error")
                continue
            compared += n
            changes.extend(found)
            for p in problems:
                bad = True
                echo(p, err=True, style="error")
    groups = {g: [c for c in changes if c.group == g] for g in GROUPS}
    if fmt == "json":
        echo(json.dumps({"compared": compared, "changed": len(changes),
                         "groups": {g: [_change_json(c) for c in cs] for g, cs in
                                    groups.items()}}, indent=2))
    else:
        report(groups, compared, len(changes))
    if bad:
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_FAIL if changes else EXIT_OK)


def diff_file(old_engine: Engine, new_engine: Engine, path: Path, bar: Progress
              ) -> tuple[int, list[Change], list[str]]:
    """Replay one file under both policy sets, line by line, side by side."""
    old, new = Replay(old_engine), Replay(new_engine)
    compared = 0
    changes: list[Change] = []
    problems: list[str] = []
    for line in read_trace(path):
        bar.advance(len(line.text) + 1)
        a, b = old.step(line), new.step(line)
        if a is None or b is None:
            continue
        da, db = a.decision, b.decision
        if a.problem is not None or b.problem is not None or da is None or db is None:
            problems.append(f"{a.where}: {a.problem or b.problem}")
            continue
        compared += 1
        if changed(da, db):
            changes.append(Change(a.file, a.line, a.event, a.tool, a.agent, da, db))
    return compared, changes, problems


def _summary(d: Decision) -> str:
    return f"{d.decision} (ttl {d.ttl}, rules [{', '.join(d.rules)}])"


def report(groups: dict[str, list[Change]], compared: int, total: int) -> None:
    for group, items in groups.items():
        if not items:
            continue
        style = {"newly allowed": "warning", "newly denied": "error"}.get(group, "bold")
        echo(f"{group} ({len(items)}): {GROUPS[group]}", style=style)
        for c in items:
            what = " ".join(p for p in (c.event, c.tool, f"by {c.agent}" if c.agent else None)
                            if p)
            echo(f"  {c.file}:{c.line}: {what}")
            echo(f"      old: {_summary(c.old)}")
            echo(f"      new: {_summary(c.new)}")
        echo()
    counts = ", ".join(f"{len(items)} {g}" for g, items in groups.items() if items)
    echo(f"{total} of {compared} decisions differ" + (f" ({counts})" if counts else ""),
         style="warning" if total else "ok")


def _change_json(c: Change) -> dict[str, object]:
    return {"file": c.file, "line": c.line, "event": c.event, "tool": c.tool, "agent": c.agent,
            "old": c.old.to_json(), "new": c.new.to_json()}

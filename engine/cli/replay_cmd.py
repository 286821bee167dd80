"""`agp replay -p POLICY TRACE...`: one Decision per `call` and `request` event."""

from __future__ import annotations

import json
import sys

import click

from agp.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    color_enabled,
    echo,
    file_size,
    format_option,
    identity_options,
    load_engine,
    policy_option,
    progress,
)
from agp.model import Decision
from agp.runtime import Outcome, Replay, TraceError, read_trace, trace_files


@click.command("replay")
@identity_options
@policy_option
@click.argument("traces", nargs=-1, required=True, type=click.Path())
@format_option("json", "table")
def command(policies: tuple[str, ...], traces: tuple[str, ...], fmt: str) -> None:
    """Replay TRACES (files, or directories of *.jsonl) and print every decision.

    Prints one Decision JSON per `call` and `request` event, with the event's `file` and `line`
    (JSON Lines), or a readable table with `--format table`. A malformed line goes to stderr as
    `file:line: message` and the other lines are still replayed. Exit status: 0, or 2 for bad
    usage or input (a missing path, a policy set that does not load, an unreadable trace, a
    malformed line).
    """
    engine = load_engine(policies, policy_errors=EXIT_USAGE)
    files, missing = trace_files(traces)
    bad = bool(missing)
    for problem in missing:
        echo(problem, err=True, style="error")
    rows: list[tuple[Outcome, Decision]] = []
    with progress(sum(file_size(f) for f in files), "replaying") as bar:
        for f in files:
            replay = Replay(engine)
            try:
                for line in read_trace(f):
                    bar.advance(len(line.text) + 1)
                    o = replay.step(line)
                    if o is None:
                        continue
                    if o.problem is not None or o.decision is None:  # not a decided event
                        bad = True
                        echo(f"{o.where}: {o.problem}", err=True, style="error")
                    elif fmt == "json":
                        echo(json.dumps({"file": o.file, "line": o.line, "event": o.event,
                                         **o.decision.to_json()}))
                    else:
                        rows.append((o, o.decision))
            except TraceError as exc:
                bad = True
                echo(str(exc), err=True, style="error")
    if fmt == "table":
        print_table(rows)
    sys.exit(EXIT_USAGE if bad else EXIT_OK)


def print_table(outcomes: list[tuple[Outcome, Decision]]) -> None:
    from rich.console import Console
    from rich.table import Table

    color = color_enabled()
    table = Table(box=None, header_style="bold" if color else None, pad_edge=False)
    for column in ("where", "event", "agent", "tool", "decision", "ttl", "rules"):
        table.add_column(column, justify="right" if column == "ttl" else "left",
                         overflow="fold")
    styles = {"allow": "green", "ask": "yellow", "deny": "red"}
    for o, d in outcomes:
        table.add_row(o.where, o.event, o.agent or "", o.tool or "",
                      f"[{styles[d.decision]}]{d.decision}[/]" if color else d.decision,
                      str(d.ttl), ", ".join(d.rules), end_section=False)
    console = Console(no_color=not color, force_terminal=color, highlight=False,
                      width=None if color else 400, markup=True)
    with console.capture() as captured:
        console.print(table)
    # Rich pads every cell; trailing blanks only get in the way of scripts and diffs.
    echo("\n".join(line.rstrip() for line in captured.get().rstrip("\n").split("\n")))

"""Helpers shared by the commands: loading policies, reporting, colour, exit codes.

Colour and the progress bar appear only on a terminal, and never with `NO_COLOR` set: piped
output is exactly the plain text that tests and scripts read.
"""

from __future__ import annotations

import os
import re
import sys
import time
from contextlib import contextmanager

import click

from agp.diagnostics import Diagnostic, render
from agp.engine import Engine
from agp.loader import check_paths

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def color_enabled(err: bool = False) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = sys.stderr if err else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def echo(text: str = "", *, err: bool = False, style: str | None = None) -> None:
    """Print a line, styled (rich markup style names) only when colour is enabled."""
    if style and color_enabled(err):
        text = click.style(text, **_STYLES.get(style, {}))
    click.echo(text, err=err, color=color_enabled(err))


_STYLES = {
    "error": {"fg": "red", "bold": True},
    "warning": {"fg": "yellow", "bold": True},
    "ok": {"fg": "green", "bold": True},
    "dim": {"dim": True},
    "bold": {"bold": True},
    "info": {"fg": "cyan"},
}


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print `agp: error: message` to stderr and exit with `code`."""
    echo(f"agp: error: {message}", err=True, style="error" if code else None)
    sys.exit(code)


_HEAD = re.compile(r"^(?P<where>\S+: )(?P<sev>error|warning)(?P<code>\[[^\]]*\])(?P<rest>:.*)$")


def render_diagnostic(d: Diagnostic, color: bool) -> str:
    """The rendering of agp.diagnostics, with the severity and the caret in colour."""
    text = render(d)
    if not color:
        return text
    sev = "red" if d.is_error else "yellow"
    out = []
    for i, line in enumerate(text.split("\n")):
        m = _HEAD.match(line) if i == 0 else None
        if m:
            line = (click.style(m["where"], bold=True) + click.style(m["sev"] + m["code"],
                    fg=sev, bold=True) + click.style(m["rest"], bold=True))
        elif line.lstrip(" ").startswith("| ") and set(line.split("| ", 1)[1]) <= {" ", "^"} \
                and "^" in line:
            gutter, caret = line.split("| ", 1)
            line = click.style(gutter + "| ", fg="blue") + click.style(caret, fg=sev, bold=True)
        elif re.match(r"^\s*\d* \|", line):
            gutter, rest = line.split("|", 1)
            line = click.style(gutter + "|", fg="blue") + rest
        elif line.startswith("  = help:"):
            line = click.style(line, fg="cyan")
        elif line.startswith("note:"):
            line = click.style(line, fg="cyan")
        out.append(line)
    return "\n".join(out)


def render_diagnostics(diagnostics, *, err: bool = False) -> str:
    color = color_enabled(err)
    return "\n\n".join(render_diagnostic(d, color)
                       for d in sorted(diagnostics, key=Diagnostic.sort_key))


def load_engine(paths) -> Engine:
    """Load a policy set for a command; on errors print the diagnostics and exit 1."""
    policy, diagnostics = check_paths(list(paths))
    if policy is None:
        echo(render_diagnostics([d for d in diagnostics if d.is_error], err=True), err=True)
        errors = sum(d.is_error for d in diagnostics)
        fail(f"the policy set has {errors} error(s)", EXIT_FAIL)
    return Engine(policy)


policy_option = click.option(
    "-p", "--policy", "policies", multiple=True, required=True, type=click.Path(),
    help="A policy file or directory (repeatable).")


def format_option(*choices: str, default: str | None = None):
    return click.option(
        "--format", "fmt", type=click.Choice(choices), default=default or choices[0],
        show_default=True, help="Output format (`json` is for machines).")


class Progress:
    """A progress bar on stderr for work that takes more than a second (terminals only)."""

    DELAY = 1.0

    def __init__(self, total: int, label: str):
        self.total, self.label = total, label
        self.done = 0
        self.started = time.monotonic()
        self.bar = None
        self.enabled = color_enabled(err=True) and total > 0

    def advance(self, amount: int) -> None:
        self.done += amount
        if not self.enabled:
            return
        if self.bar is None:
            if time.monotonic() - self.started < self.DELAY:
                return
            from rich.console import Console
            from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                           TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total, completed=self.done)
        else:
            self.bar.update(self.task, completed=self.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@contextmanager
def progress(total: int, label: str):
    bar = Progress(total, label)
    try:
        yield bar
    finally:
        bar.close()

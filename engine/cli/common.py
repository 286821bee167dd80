"""Helpers shared by the commands: loading policies, reporting, colour, exit codes.

Colour and the progress bar appear only on a terminal, and never with `NO_COLOR` set: piped
output is exactly the plain text that tests and scripts read.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from agp.diagnostics import Diagnostic, render
from agp.engine import Engine, file_state
from agp.identity import identity_check
from agp.loader import check_paths
from agp.policy import Policy

if TYPE_CHECKING:
    from rich.progress import Progress as Bar
    from rich.progress import TaskID

# A command function, or a command already built, as click's decorators take them.
F = TypeVar("F", bound=Callable[..., Any])

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


_STYLES: dict[str, dict[str, Any]] = {  # keyword arguments of click.style
    "error": {"fg": "red", "bold": True},
    "warning": {"fg": "yellow", "bold": True},
    "ok": {"fg": "green", "bold": True},
    "dim": {"dim": True},
    "bold": {"bold": True},
    "info": {"fg": "cyan"},
}


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
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


def render_diagnostics(diagnostics: Iterable[Diagnostic], *, err: bool = False) -> str:
    color = color_enabled(err)
    return "\n\n".join(render_diagnostic(d, color) if not is_input_problem(d)
                       # no source line to show, and no line or column to give
                       else f"{d.span.source.name}: error[{d.code}]: {d.message}"
                       for d in sorted(diagnostics, key=Diagnostic.sort_key))


def is_input_problem(d: Diagnostic) -> bool:
    """A path that does not exist, a folder without policy files, a file that cannot be read:
    bad input (exit 2), with no source line to show."""
    return d.code == "io"


def exit_status(diagnostics: Iterable[Diagnostic], *, policy_errors: int = EXIT_FAIL) -> int:
    """0 without errors; 2 for bad input; `policy_errors` when the policy set has errors."""
    diagnostics = list(diagnostics)
    if any(is_input_problem(d) for d in diagnostics):
        return EXIT_USAGE
    return policy_errors if any(d.is_error for d in diagnostics) else EXIT_OK


def load_engine(paths: Iterable[str], *, policy_errors: int = EXIT_FAIL,
                compiled: bool = True) -> Engine:
    """Load a policy set for a command; when it does not load, print why and exit.

    The exit status is 2 for bad input (a missing path, a folder without .agp files) and
    `policy_errors` for errors in the policy: 1 where a command reports on the policy itself
    (`eval`, `compile`), 2 where the policy is only the input of something else (`test`,
    `replay`, `diff`: there 1 means failed tests or differences).
    """
    paths = list(paths)
    policy, diagnostics = check_paths(paths)
    if policy is None:
        errors = [d for d in diagnostics if d.is_error]
        echo(render_diagnostics(errors, err=True), err=True)
        fail(f"the policy set at {', '.join(paths)} does not load ({len(errors)} error(s))",
             exit_status(errors, policy_errors=policy_errors))
    try:
        return command_engine(policy, identity_values(), compiled=compiled)
    except ValueError as exc:  # a trust bundle or a key that cannot be used, a missing option
        fail(str(exc))


def command_engine(policy: Policy, options: Mapping[str, str], *,
                   compiled: bool = True) -> Engine:
    """The Engine of a command, given the values of its identity_options (`identity_values()`;
    empty when it has none). Raises ValueError for values that cannot be used. Separate from
    load_engine so that `agp test --jobs` workers build the same engine outside click."""
    return Engine(policy, compiled=compiled,
                  identity=identity_check(options.get("trust"), options.get("audience"), None),
                  issuer_key=options.get("issuer_key"), issuer=options.get("issuer"))


_IDENTITY = "agp.identity"  # where identity_options leave their values, in click's context


def identity_values() -> dict[str, str]:
    """The --trust/--audience/--issuer-key/--issuer given to the current command, by name."""
    return dict(click.get_current_context().meta.get(_IDENTITY, {}))


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None and param.name is not None:
        ctx.meta.setdefault(_IDENTITY, {})[param.name] = value


def identity_options(f: F) -> F:
    """--trust/--audience (verify JWT-SVIDs) and --issuer-key/--issuer (sign grants), read by
    load_engine: a command only adds this decorator (docs/identity.md)."""
    for option in reversed((
            click.option("--trust", type=click.Path(dir_okay=False), expose_value=False,
                         callback=_remember, help="Trust bundle: {trust domain: JWKS} (JSON)."),
            click.option("--audience", expose_value=False, callback=_remember,
                         help="The audience JWT-SVIDs must name (with --trust)."),
            click.option("--issuer-key", type=click.Path(dir_okay=False), expose_value=False,
                         callback=_remember, help="Private JWK that signs a grant on every allow."),
            click.option("--issuer", expose_value=False, callback=_remember,
                         help="The `iss` of grants (with --issuer-key)."))):
        f = option(f)
    return f


def make_policy_option(required: bool, help: str = "A policy file or directory (repeatable)."
                       ) -> Callable[[F], F]:
    return click.option("-p", "--policy", "policies", multiple=True, required=required,
                        type=click.Path(), help=help)


policy_option = make_policy_option(True)


def format_option(*choices: str, default: str | None = None) -> Callable[[F], F]:
    return click.option(
        "--format", "fmt", type=click.Choice(choices), default=default or choices[0],
        show_default=True, help="Output format (`json` is for machines).")


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class Progress:
    """A progress bar on stderr for work that takes more than a second (terminals only)."""

    DELAY = 1.0

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label = total, label
        self.done = 0
        self.started = time.monotonic()
        self.bar: Bar | None = None
        self.task: TaskID | None = None
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
        elif self.task is not None:
            self.bar.update(self.task, completed=self.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@contextmanager
def progress(total: int, label: str) -> Iterator[Progress]:
    bar = Progress(total, label)
    try:
        yield bar
    finally:
        bar.close()


# How `--watch` waits between two looks at the files. Tests replace `watch_sleep` (to edit a file
# instead of sleeping) and set `watch_rounds`, the number of looks before the loop returns
# (None: until Ctrl-C).
WATCH_INTERVAL = 0.5
watch_sleep: Callable[[float], None] = time.sleep
watch_rounds: int | None = None


def run_or_watch(run: Callable[[], None], watched: Callable[[], Iterable[Path]],
                 watch: bool) -> NoReturn:
    """Run a command once and exit with its status; with `watch`, run it again whenever one of
    the files `watched()` lists changes (or a file appears or goes), until Ctrl-C.

    `run` ends with `sys.exit(status)` as a command does. The watcher polls names, sizes and
    modification times, as `Engine.watch` does; the last run's status is the exit status.
    """
    seen = file_state(watched()) if watch else None
    status = _status(run)
    if not watch:
        sys.exit(status)
    echo(f"watching for changes every {WATCH_INTERVAL:g}s (Ctrl-C to stop)", err=True,
         style="dim")
    looks = 0
    try:
        while watch_rounds is None or looks < watch_rounds:
            watch_sleep(WATCH_INTERVAL)
            looks += 1
            current = file_state(watched())
            if current != seen:
                seen = current
                echo("change detected: running again", err=True, style="dim")
                status = _status(run)
    except KeyboardInterrupt:
        echo()
    sys.exit(status)


def _status(run: Callable[[], None]) -> int:
    try:
        run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_FAIL if exc.code else EXIT_OK
    return EXIT_OK


def watch_option(what: str) -> Callable[[F], F]:
    return click.option("--watch", is_flag=True,
                        help=f"Run again whenever {what} changes, until Ctrl-C.")

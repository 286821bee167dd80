"""`agp check PATH...`: parse and check policy sets."""

from __future__ import annotations

import sys

import click

from agp.cli.common import EXIT_FAIL, EXIT_OK
from agp.diagnostics import render_all
from agp.loader import check_paths


@click.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def command(paths: tuple[str, ...]) -> None:
    """Parse and check the policy sets at PATHS (files or directories, each one set).

    Prints `file:line:col: error[CODE]: message` with the source line for every problem.
    Exit status: 0 when there is no error (warnings allowed), 1 when there are errors.
    """
    errors = warnings = 0
    for path in paths:
        _, diagnostics = check_paths([path])
        if diagnostics:
            click.echo(render_all(diagnostics))
            click.echo()
        errors += sum(d.is_error for d in diagnostics)
        warnings += sum(not d.is_error for d in diagnostics)
    click.echo(f"{errors} error(s), {warnings} warning(s)", err=True)
    sys.exit(EXIT_FAIL if errors else EXIT_OK)

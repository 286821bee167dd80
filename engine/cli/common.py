"""Helpers shared by the commands: loading policies, reporting, exit codes."""

from __future__ import annotations

import sys

import click

from agp.diagnostics import render_all
from agp.engine import Engine
from agp.loader import check_paths

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print `agp: error: message` to stderr and exit with `code`."""
    click.echo(f"agp: error: {message}", err=True)
    sys.exit(code)


def load_engine(paths) -> Engine:
    """Load a policy set for a command; on errors print the diagnostics and exit 1."""
    policy, diagnostics = check_paths(list(paths))
    if policy is None:
        click.echo(render_all([d for d in diagnostics if d.is_error]), err=True)
        errors = sum(d.is_error for d in diagnostics)
        fail(f"the policy set has {errors} error(s)", EXIT_FAIL)
    return Engine(policy)


policy_option = click.option(
    "-p", "--policy", "policies", multiple=True, required=True, type=click.Path(),
    help="A policy file or directory (repeatable).")

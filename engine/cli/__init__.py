"""The `agp` command line: one module per command, joined here."""

from __future__ import annotations

import importlib

import click

from agp import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="agp")
def main() -> None:
    """agp: intent-aware policy-as-code for AI agents.

    Write policies in .agp files, check them, decide requests, and test them against recorded
    agent traces. Exit status 2 always means bad usage or bad input.
    """


for _name in ("check", "eval", "test", "replay", "diff", "compile", "fmt", "lsp"):
    _module = f"agp.cli.{_name}_cmd"
    try:
        main.add_command(importlib.import_module(_module).command)
    except ModuleNotFoundError as _exc:  # a command whose module is not written yet
        if _exc.name != _module:
            raise

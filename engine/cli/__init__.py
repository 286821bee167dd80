"""The `agp` command line: one module per command, joined here."""

from __future__ import annotations

import click

from agp import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="agp")
def main() -> None:
    """agp: intent-aware policy-as-code for AI agents.

    Write policies in .agp files, check them, decide requests, and test them against recorded
    agent traces; `agp init DIR` starts a policy set with a trace and CI. Exit status 2 always
    means bad usage or bad input.
    """


from agp.cli import (  # noqa: E402 - the commands register on `main`, defined above
    analyze_cmd,
    check_cmd,
    compile_cmd,
    diff_cmd,
    eval_cmd,
    fmt_cmd,
    import_cmd,
    init_cmd,
    keys_cmd,
    lsp_cmd,
    mcp_cmd,
    replay_cmd,
    serve_cmd,
    test_cmd,
)

for _module in (init_cmd, check_cmd, eval_cmd, test_cmd, replay_cmd, diff_cmd, compile_cmd,
                fmt_cmd, analyze_cmd, keys_cmd, serve_cmd, mcp_cmd, import_cmd, lsp_cmd):
    main.add_command(_module.command)

"""docs/cli.md carries the `--help` of every command verbatim, so the two never drift apart.

Regenerate the blocks with `AGP_UPDATE_DOCS=1 pytest tests/test_cli_docs.py`.
"""

from __future__ import annotations

import os
import re

from click.testing import CliRunner
from support import ROOT

from agp.cli import main

DOC = ROOT / "docs" / "cli.md"
BLOCK = re.compile(r"(<!-- help: (?P<cmd>[\w -]*) -->\n```text\n)(?P<body>.*?)(```)", re.S)


def help_text(command: str) -> str:
    args = [*command.split(), "--help"] if command else ["--help"]
    result = CliRunner().invoke(main, args, terminal_width=100, prog_name="agp")
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_documented_with_its_current_help():
    text = DOC.read_text()
    documented = {m["cmd"] for m in BLOCK.finditer(text)}
    assert documented >= {"", *main.commands}, "commands missing from docs/cli.md"
    if os.environ.get("AGP_UPDATE_DOCS"):
        DOC.write_text(BLOCK.sub(lambda m: m.group(1) + help_text(m["cmd"]) + m.group(4), text))
        text = DOC.read_text()
    for m in BLOCK.finditer(text):
        assert m["body"] == help_text(m["cmd"]), f"docs/cli.md is stale for `agp {m['cmd']}`"

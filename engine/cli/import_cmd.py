"""`agp import otel|mcp-tools`: traces and tool declarations from what agents already emit."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agp.cli.common import EXIT_USAGE, echo, fail
from agp.cli.mcp_cmd import json_option


@click.group("import")
def command() -> None:
    """Turn what agents already emit into agp files: OpenTelemetry spans into a trace,
    an MCP server's tools into `tool` declarations."""


def _write(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")


@command.command("otel")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "out", type=click.Path(), help="The trace file (default: stdout).")
@click.option("--agent", help="The agent of calls whose spans name none.")
@click.option("--task-kind", help="Group calls into tasks of this kind (else no task).")
@click.option("--task-params", help="The tasks' params, a JSON object.")
def otel(files: tuple[str, ...], out: str | None, agent: str | None, task_kind: str | None,
         task_params: str | None) -> None:
    """Read OTLP JSON spans (FILES: one document each, or one per line) and write a trace:
    one `call` per `execute_tool` span, grouped into tasks by conversation (or trace).

    Spans of other operations and malformed tool spans are skipped and counted on stderr.
    Exit status: 0, or 2 for input that is not OTLP JSON or a call without an agent.
    """
    from agp.integrations.otel import InputError, convert, read_documents

    params = json_option(task_params, "--task-params", dict)
    try:
        result = convert([doc for f in files for doc in read_documents(f)], agent=agent,
                         task_kind=task_kind, task_params=params)
    except InputError as exc:
        fail(str(exc))
    _write("".join(line + "\n" for line in result.lines()), out)
    echo(f"agp import otel: {result.summary()}", err=True)


@command.command("mcp-tools", context_settings={"ignore_unknown_options": True})
@click.option("-o", "--output", "out", type=click.Path(), help="The .agp file (default: stdout).")
@click.option("--from", "source", type=click.Path(),
              help="A saved tools/list result (JSON), instead of starting the server.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def mcp_tools(out: str | None, source: str | None, command: tuple[str, ...]) -> None:
    """Write one `tool` declaration per tool of an MCP server: from a saved tools/list result
    (`--from TOOLS.json`) or by starting the server (`-- COMMAND [ARG...]`).

    Intents and data classes are left to you: each declaration carries a comment saying so.
    Exit status: 0, or 2 for bad input or a server that cannot be started.
    """
    from agp.integrations.mcp_tools import ToolsError, declarations, tools_of
    from agp.jsonio import JSONInputError, loads

    if (source is None) == (not command):
        fail("give either --from TOOLS.json or -- COMMAND [ARG...]", EXIT_USAGE)
    try:
        if source is not None:
            try:
                text = Path(source).read_bytes().decode("utf-8")
            except OSError as exc:
                fail(f"cannot read {source}: {exc.strerror or exc}")
            except UnicodeDecodeError as exc:
                fail(f"{source}: invalid UTF-8 at byte {exc.start}")
            try:
                tools = tools_of(loads(text), source)
            except JSONInputError as exc:
                fail(exc.where(source))
        else:
            tools = _live(list(command))
        _write(declarations(tools), out)
    except ToolsError as exc:
        fail(str(exc))
    echo(f"agp import mcp-tools: {len(tools)} tool(s)", err=True)


def _live(command: list[str]) -> list[dict[str, object]]:
    import anyio

    from agp.integrations.mcp_tools import list_tools

    try:
        return anyio.run(list_tools, command)
    except Exception as exc:  # the SDK raises groups of errors from its task groups
        fail(f"cannot list the tools of {' '.join(command)}: {_cause(exc)}")


def _cause(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__

"""`agp mcp-guard -p POLICY --agent ID [...] -- COMMAND [ARG...]`: a policy gate for MCP."""

from __future__ import annotations

import uuid
from typing import Any

import click

from agp.cli.common import EXIT_USAGE, fail, load_engine, policy_option
from agp.jsonio import JSONInputError, loads


def json_option(value: str | None, name: str, kind: type) -> Any:
    """The JSON value of an option, of the given kind (dict or list); exit 2 otherwise."""
    if value is None:
        return kind()
    try:
        parsed = loads(value)
    except JSONInputError as exc:
        fail(exc.where(name))
    if not isinstance(parsed, kind):
        fail(f"{name}: expected a JSON {'object' if kind is dict else 'list'}")
    return parsed


@click.command("mcp-guard", context_settings={"ignore_unknown_options": True})
@policy_option
@click.option("--agent", required=True, help="The agent's identity (a SPIFFE ID).")
@click.option("--task-kind", help="Open a task of this kind; without it, calls have no task.")
@click.option("--task-params", help="The task's params, a JSON object.")
@click.option("--task-id", help="The task instance's id (default: generated). A task of that "
              "id, kind and params running in --store is joined instead.")
@click.option("--chain", help="The hops before the agent, a JSON list (default: []).")
@click.option("--prefix", help="Decide tool NAME as PREFIX.NAME.")
@click.option("--store", help="Keep task state in this store (redis://host:port/db).")
@click.option("--decision-log", type=click.Path(), help="Write every decision to this JSON "
              "Lines file.")
@click.option("--require-identity", is_flag=True,
              help="Decide every call as a verified identity (with --trust, --audience and "
                   "--svid-file).")
@click.option("--trust", type=click.Path(dir_okay=False),
              help="Trust bundle: {trust domain: JWKS} (JSON), to verify the JWT-SVID.")
@click.option("--audience", help="The audience the JWT-SVID must name (with --trust).")
@click.option("--svid-file", type=click.Path(dir_okay=False),
              help="The agent's JWT-SVID, read again for every call.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def command(policies: tuple[str, ...], agent: str, task_kind: str | None,
            task_params: str | None, task_id: str | None, chain: str | None,
            prefix: str | None, store: str | None, decision_log: str | None,
            require_identity: bool, trust: str | None, audience: str | None,
            svid_file: str | None, command: tuple[str, ...]) -> None:
    """Guard the MCP server started by COMMAND (after `--`): serve MCP on stdio, decide every
    `tools/call` with the policy before it is forwarded, forward everything else unchanged.

    A denied call gets a tool result with `isError` and the text `denied by policy: ...`; an
    ask is put to the user through MCP elicitation when the client supports it (else it is
    answered `needs approval: ...`). Exit status: 0 when the client closes the connection,
    1 when the upstream server exits, 2 for bad usage or input.
    """
    from agp.engine import Engine
    from agp.identity import identity_check
    from agp.integrations.mcp_guard import GuardSettings, SvidFile, serve
    from agp.runtime import TaskError
    from agp.store import StoreUnavailable

    # The SVID and the trust that verifies it only make sense together: a token no trust
    # verifies is refused on every call, and trust without a token denies every call.
    if (require_identity or trust is not None or svid_file is not None) and \
            (trust is None or audience is None or svid_file is None):
        fail("--require-identity, --trust, --audience and --svid-file go together: the guard "
             "proves its agent with the JWT-SVID in --svid-file, verified with --trust for "
             "--audience")
    checked = load_engine(policies, policy_errors=EXIT_USAGE)
    try:  # the checked set, prepared again with the identity and store options
        # The identity check is part of the evaluator, so the checked engine's evaluator
        # (made without trust) cannot be reused. With trust, identity is required (as by
        # agp.load): every call carries the SVID.
        engine = Engine(checked.policy, store=store,
                        identity=identity_check(trust, audience, None))
    except ValueError as exc:  # a trust bundle that cannot be used, a store URL, ...
        fail(str(exc))
    svid = SvidFile(svid_file) if svid_file is not None else None
    if svid is not None and svid.read() is None:
        fail(f"cannot read the JWT-SVID file {svid_file}")
    if decision_log is not None:
        try:
            engine.log_decisions(decision_log)
        except OSError as exc:
            fail(f"cannot write the decision log {decision_log}: {exc.strerror or exc}")
    runtime = engine.tasks()
    params = json_option(task_params, "--task-params", dict)
    hops = json_option(chain, "--chain", list)
    task, opened = None, False
    if task_kind is not None:
        task = task_id or f"mcp-{uuid.uuid4()}"
        try:
            runtime.start({"id": task, "kind": task_kind, "params": params}, agent=agent,
                          chain=hops)
            opened = True
        except TaskError as exc:
            # In a shared store, the task may be running already: opened by the guard of the
            # agent's other MCP server, say. Join it, so that its session spans both servers.
            try:
                record = runtime.store.task(task) if task_id is not None else None
            except StoreUnavailable:
                record = None
            if record is None or record.ended or record.task.kind != task_kind or \
                    (task_params is not None and record.task.params != params):
                engine.close()
                fail(str(exc))
            click.echo(f"agp mcp-guard: joining task {task!r}, which is running in the store",
                       err=True)
        except StoreUnavailable as exc:
            engine.close()
            fail(str(exc))
    settings = GuardSettings(agent=agent, task=task, prefix=prefix, svid=svid)

    def approve(tool: str, args: dict[str, Any]) -> None:
        if task is not None:  # the approved call becomes an allow in the task's session
            runtime.approve(task, tool, args)

    try:
        status = serve(runtime, settings, list(command), approve=approve)
    except OSError as exc:
        fail(f"cannot start the upstream server {command[0]!r}: {exc.strerror or exc}")
    finally:
        try:
            if task is not None and opened:  # a task it joined is ended by who opened it
                runtime.end(task)
        except StoreUnavailable as exc:  # its calls were decided; only the end is not on record
            click.echo(f"agp mcp-guard: could not end task {task!r}: {exc}", err=True)
        engine.close()
    raise SystemExit(status)

"""`agp serve -p POLICY`: the decision service over HTTP (docs/serve.md)."""

from __future__ import annotations

import sys
from typing import Any

import click

from agp.cli.common import (
    EXIT_FAIL,
    EXIT_USAGE,
    echo,
    exit_status,
    fail,
    policy_option,
    render_diagnostics,
)
from agp.engine import Engine, load
from agp.loader import PolicyError
from agp.store import StoreUnavailable


@click.command("serve")
@policy_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the default takes connections from this machine only.")
@click.option("--port", type=click.IntRange(0, 65535), default=8181, show_default=True,
              help="Port to listen on (0: a free one, printed at start).")
@click.option("--store", metavar="URL",
              help="Where tasks, sessions and revocations live (redis://HOST:PORT/DB); shared "
                   "by every instance pointed at it. Default: this process's memory.")
@click.option("--trust", metavar="FILE", help="Trust bundle to verify agents' JWT-SVIDs.")
@click.option("--audience", metavar="AUD", help="The audience SVIDs must name (with --trust).")
@click.option("--issuer-key", metavar="FILE", help="Private key to sign grants with.")
@click.option("--issuer", metavar="ISS", help="The `iss` of the grants (with --issuer-key).")
@click.option("--decision-log", metavar="FILE", type=click.Path(dir_okay=False),
              help="Append every decision to FILE (JSON Lines, replayable with agp test).")
@click.option("--api-key-file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Require `Authorization: Bearer <key>` (the file's content) on every "
                   "endpoint but /healthz and /readyz.")
@click.option("--trust-request-time", is_flag=True,
              help="Decide at the `now` a body gives instead of the service's clock (for "
                   "replaying recorded traffic in tests; never in production).")
@click.option("--max-body-bytes", type=click.IntRange(1), default=1 << 20, show_default=True,
              help="Larger bodies are refused with 413.")
@click.option("--request-timeout", type=click.FloatRange(0.001), default=10.0,
              show_default=True, help="Seconds to read and answer a request (else 503).")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="One JSON line per request on standard error.")
def command(policies: tuple[str, ...], host: str, port: int, store: str | None,
            trust: str | None, audience: str | None, issuer_key: str | None,
            issuer: str | None, decision_log: str | None, api_key_file: str | None,
            trust_request_time: bool, max_body_bytes: int, request_timeout: float,
            access_log: bool) -> None:
    """Serve decisions and task calls over HTTP/JSON until SIGTERM or Ctrl-C.

    Reloads the policy set on SIGHUP and when one of its files changes; a set that does not
    load leaves the old one serving. Exit status: 0 after a clean shutdown, 1 policy errors,
    2 bad usage or input.
    """
    from agp.serve import ServeOptions, bind, serve

    api_key = _read_key(api_key_file) if api_key_file is not None else None
    engine = _load(list(policies), decision_log=decision_log, store=store, trust=trust,
                   audience=audience, issuer_key=issuer_key, issuer=issuer)
    try:
        sock = bind(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    address = sock.getsockname()
    shown = f"[{address[0]}]" if ":" in address[0] else address[0]
    options = ServeOptions(trust_request_time=trust_request_time, api_key=api_key,
                           max_body_bytes=max_body_bytes, request_timeout=request_timeout,
                           access_log=sys.stderr if access_log else None)
    echo(f"agp serve: listening on http://{shown}:{address[1]} (policy {engine.policy_hash})",
         err=True)
    serve(engine, sock, options)
    echo("agp serve: stopped", err=True)


def _read_key(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            key = f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the API key file {path}: {getattr(exc, 'strerror', None) or exc}")
    if not key or any(c.isspace() for c in key):
        fail(f"the API key file {path} must hold one key without spaces")
    return key


def _load(paths: list[str], **options: Any) -> Engine:
    """`agp.load` with the options given; a policy set that does not load is reported and
    ends the command."""
    try:
        return load(paths, **options)
    except PolicyError as exc:
        errors = [d for d in exc.diagnostics if d.is_error]
        echo(render_diagnostics(errors, err=True), err=True)
        fail(f"the policy set at {', '.join(paths)} does not load ({len(errors)} error(s))",
             exit_status(errors, policy_errors=EXIT_FAIL))
    except (ValueError, OSError) as exc:  # a bad --store URL, an unreadable key or bundle
        fail(str(exc), EXIT_USAGE)
    except StoreUnavailable as exc:
        fail(f"the store cannot be reached: {exc}", EXIT_USAGE)

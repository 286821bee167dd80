"""`agp eval -p POLICY [REQUEST.json]`: decide one request."""

from __future__ import annotations

import json
import sys

import click

from agp.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    echo,
    fail,
    format_option,
    identity_options,
    load_engine,
    policy_option,
)
from agp.jsonio import JSONInputError, loads


@click.command("eval")
@identity_options
@policy_option
@click.argument("request", required=False, type=click.Path(allow_dash=True))
@format_option("json", "text")
def command(policies: tuple[str, ...], request: str | None, fmt: str) -> None:
    """Decide one REQUEST (a JSON file, or standard input when absent or `-`).

    Prints the Decision JSON (`--format text`: a readable summary). Exit status: 0 decided,
    1 policy errors, 2 bad usage or input (a request that is not valid JSON, or that is denied
    as `request.invalid`).
    """
    engine = load_engine(policies)
    name = request if request not in (None, "-") else "<stdin>"
    try:
        if request is None or request == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(request, "rb") as f:
                raw = f.read()
        text = raw.decode("utf-8")
    except OSError as exc:
        fail(f"cannot read {name}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        fail(f"{name}: invalid UTF-8 at byte {exc.start}")
    try:
        value = loads(text)
    except JSONInputError as exc:
        fail(exc.where(name))
    decision = engine.decide(value)
    if fmt == "json":
        echo(json.dumps(decision.to_json(), indent=2))
    else:
        style = {"allow": "ok", "ask": "warning", "deny": "error"}[decision.decision]
        echo(f"{decision.decision} (ttl {decision.ttl}s)", style=style)
        echo(f"  rules:   {', '.join(decision.rules)}")
        for reason in decision.reasons:
            echo(f"  because: {reason}")
        for error in decision.errors:
            echo(f"  error:   {error}", style="warning")
    sys.exit(EXIT_USAGE if "request.invalid" in decision.rules else EXIT_OK)

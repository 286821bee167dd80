"""`agp keys`: issuer keys for grants, and JWT-SVIDs for tests (docs/identity.md).

    agp keys generate -o issuer.jwk [--curve ed25519|p256] [--force]
    agp keys public issuer.jwk [--trust-domain acme.com]
    agp keys svid --key signer.jwk --sub spiffe://acme.com/agents/bot --aud agp --ttl 1h
"""

from __future__ import annotations

import json
import math
import os

import click

from agp.cli.common import echo, fail
from agp.identity.keys import (
    KeyProblem,
    algorithms_for,
    generate,
    mint_svid,
    public_jwks,
    read_json,
)
from agp.limits import MAX_DURATION, MAX_TIME, MIN_TIME
from agp.syntax.parser import parse_duration


@click.group("keys")
def command() -> None:
    """Keys for grants (generate, public) and test JWT-SVIDs (svid)."""


@command.command("generate")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the private JWK (created with mode 0600).")
@click.option("--curve", type=click.Choice(["ed25519", "p256"]), default="ed25519",
              show_default=True, help="Ed25519 signs grants with EdDSA, P-256 with ES256.")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def generate_cmd(output: str, curve: str, force: bool) -> None:
    """Write a new private signing key (a JWK whose kid is its RFC 7638 thumbprint)."""
    jwk = generate(curve)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(output, flags, 0o600)
    except FileExistsError:
        fail(f"{output} already exists; pass --force to replace it")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(fd, 0o600)  # also when --force replaced a file with wider permissions
        f.write(json.dumps(jwk, indent=2) + "\n")
    echo(f"wrote {output} (kid {jwk['kid']}); its public JWKS: agp keys public {output}",
         err=True)


def _private(path: str) -> dict[str, object]:
    try:
        return read_json(path, "key")
    except KeyProblem as exc:
        fail(str(exc))


@command.command("public")
@click.argument("key", type=click.Path(dir_okay=False))
@click.option("--trust-domain", metavar="DOMAIN",
              help="Print a trust bundle {DOMAIN: JWKS} for --trust instead, the key marked "
                   "for JWT-SVIDs (to verify test SVIDs signed with `agp keys svid`).")
def public_cmd(key: str, trust_domain: str | None) -> None:
    """Print the public JWKS of a private KEY: what tool servers need to verify grants."""
    private = _private(key)
    try:
        if trust_domain is None:
            out: dict[str, object] = public_jwks(private)
        else:
            public = {k: v for k, v in private.items()
                      if k not in ("d", "p", "q", "dp", "dq", "qi", "oth", "use")}
            if not algorithms_for(public):
                raise KeyProblem("a trust bundle holds RSA, EC or OKP keys")
            out = {trust_domain: {"keys": [{**public, "use": "jwt-svid"}]}}
    except KeyProblem as exc:
        fail(str(exc))
    echo(json.dumps(out, indent=2))


@command.command("svid")
@click.option("--key", "key", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="The private JWK that signs (from `agp keys generate`).")
@click.option("--sub", required=True, metavar="SPIFFE_ID",
              help="The agent, e.g. spiffe://acme.com/agents/bot.")
@click.option("--aud", required=True, multiple=True, metavar="AUD",
              help="An audience (repeatable): the --audience of the engine that verifies it.")
@click.option("--ttl", default="1h", show_default=True, metavar="DURATION",
              help="Lifetime, like 5m or 24h.")
@click.option("--now", "at", type=float, default=None, metavar="SECONDS",
              help="Issue as of this time (seconds since the epoch; default: now), for traces "
                   "whose events are at fixed times.")
def svid_cmd(key: str, sub: str, aud: tuple[str, ...], ttl: str, at: float | None) -> None:
    """FOR TESTS ONLY: print a JWT-SVID signed with KEY, to put in a trace's agent.svid.

    Real SVIDs come from SPIRE or another SPIFFE issuer; give agp the signer's trust bundle
    with `agp keys public KEY --trust-domain DOMAIN > trust.json` and `--trust trust.json`.
    """
    lifetime = parse_duration(ttl)
    if lifetime is None or lifetime > MAX_DURATION:
        fail(f"invalid --ttl {ttl!r}; use a duration like 5m or 24h "
             f"(at most {MAX_DURATION.days} days)")
    # A token agp could never accept is a typo, not a test case (nan, or beyond year 9000).
    if at is not None and not (math.isfinite(at)
                               and MIN_TIME.timestamp() <= at < MAX_TIME.timestamp()):
        fail(f"invalid --now {at!r}; give seconds since the epoch between "
             f"{MIN_TIME:%Y-%m-%d} and {MAX_TIME:%Y-%m-%d}")
    try:
        token = mint_svid(_private(key), sub, aud[0] if len(aud) == 1 else list(aud),
                          int(lifetime.total_seconds()), now=at)
    except KeyProblem as exc:
        fail(str(exc))
    echo(token)

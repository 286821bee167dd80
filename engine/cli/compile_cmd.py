"""`agp compile -p POLICY [--explain] [--emit python] [-o FILE]`: build the decision tree; check
a bundle."""

from __future__ import annotations

import sys
import time

import click

from agp.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    echo,
    fail,
    load_engine,
    make_policy_option,
)


@click.command("compile")
@make_policy_option(False, "A policy file or directory (repeatable). Required, except with "
                       "--check-bundle alone.")
@click.option("--explain", is_flag=True, help="Print the decision tree: each level's test, each "
              "leaf's rules.")
@click.option("--emit", type=click.Choice(["python"]), help="Print the generated Python of every "
              "leaf, with comments giving the policy file:line:col of each rule and condition.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write a compiled bundle "
              "that agp.load_bundle(FILE) loads without parsing or checking again.")
@click.option("--check-bundle", "bundle", type=click.Path(dir_okay=False), metavar="FILE",
              help="Verify a bundle instead: that it is intact and loads; with -p, also that it "
                   "was compiled from that policy set.")
def command(policies: tuple[str, ...], explain: bool, emit: str | None, output: str | None,
            bundle: str | None) -> None:
    """Compile a policy set into a decision tree of generated Python.

    `--emit python` prints the Python the tree runs, one function per leaf, with the policy
    position of each rule and condition in comments (tracebacks through generated code show
    the policy lines too).

    `--check-bundle FILE` verifies a bundle written by `-o`: its format version, the SHA-256 of
    its content, and that it loads; given `-p`, also that its policy hash is the hash of that
    policy set (the bundle is not stale). Exit status: 0 compiled (or the bundle is good), 1
    policy errors or a bundle of another policy set, 2 bad usage or input (a missing path, a
    corrupted, modified or unreadable bundle).
    """
    if bundle is not None:
        if explain or emit or output:
            fail("--check-bundle verifies a bundle; it does not combine with --explain, --emit "
                 "or -o")
        check_bundle(bundle, policies)
    if not policies:
        fail("give the policy set to compile with -p (or a bundle to verify with "
             "--check-bundle)")
    from agp.compile import compile_policy, explain_policy, write_bundle
    from agp.compile.tree import emit_python

    # The reference evaluator: loading must not compile, the IR is built once, here.
    engine = load_engine(policies, compiled=False)
    start = time.perf_counter()
    evaluator = compile_policy(engine.policy, eager=True)
    took = time.perf_counter() - start
    if explain:
        click.echo(explain_policy(evaluator), nl=False)
    if emit:
        click.echo(emit_python(evaluator.index), nl=False)
    if output is not None:
        try:
            write_bundle(evaluator.ctx.ir, output)  # the IR as written (agp.compile.bundle)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}", EXIT_USAGE)
        click.echo(f"wrote {output}", err=True)
    rules = len(engine.policy.rules)
    click.echo(f"compiled {rules} rule(s) into {len(evaluator.leaves)} tool leaves in "
               f"{took * 1000:.1f} ms", err=True)
    sys.exit(EXIT_OK)


def check_bundle(bundle: str, policies: tuple[str, ...]) -> None:
    """Exit 0 when the bundle is intact, loads, and (with `policies`) is of that policy set."""
    from agp.compile import BundleError
    from agp.engine import load_bundle

    try:
        built = load_bundle(bundle)
    except BundleError as exc:
        fail(str(exc))
    if policies:
        expected = load_engine(policies, compiled=False).policy_hash
        if built.policy_hash != expected:
            fail(f"{bundle} was not compiled from the policy set at {', '.join(policies)}: the "
                 f"bundle is of policy {built.policy_hash}, the set is {expected} (compile it "
                 f"again with `agp compile -p {' -p '.join(policies)} -o {bundle}`)", EXIT_FAIL)
        echo(f"{bundle}: ok, compiled from {', '.join(policies)} ({expected})")
    else:
        echo(f"{bundle}: ok (policy {built.policy_hash})")
    sys.exit(EXIT_OK)

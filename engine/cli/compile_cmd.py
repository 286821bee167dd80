"""`agp compile -p POLICY [--explain] [-o FILE]`: build the decision tree."""

from __future__ import annotations

import sys
import time

import click

from agp.cli.common import EXIT_OK, EXIT_USAGE, fail, load_engine, policy_option


@click.command("compile")
@policy_option
@click.option("--explain", is_flag=True, help="Print the decision tree: each level's test, each "
              "leaf's rules.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write a compiled bundle "
              "that agp.load_bundle(FILE) loads without parsing or checking again.")
@click.option("--check-bundle", "bundle", type=click.Path(dir_okay=False),
              help="Load a bundle and report whether it is usable (exit 2 if not).")
def command(policies: tuple[str, ...], explain: bool, output: str | None,
            bundle: str | None) -> None:
    """Compile a policy set into a decision tree of generated Python.

    Exit status: 0 compiled, 1 policy errors, 2 bad usage or a refused bundle.
    """
    from agp.compile import BundleError, compile_policy, explain_policy, write_bundle
    from agp.engine import load_bundle

    if bundle is not None:
        try:
            load_bundle(bundle)
        except BundleError as exc:
            fail(str(exc))
        click.echo(f"{bundle}: ok")
        sys.exit(EXIT_OK)
    engine = load_engine(policies)
    start = time.perf_counter()
    evaluator = compile_policy(engine.policy, eager=True)
    took = time.perf_counter() - start
    if explain:
        click.echo(explain_policy(evaluator), nl=False)
    if output is not None:
        from agp.compile.ir import policy_to_ir

        try:
            write_bundle(policy_to_ir(engine.policy), output)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}", EXIT_USAGE)
        click.echo(f"wrote {output}", err=True)
    rules = len(engine.policy.rules)
    click.echo(f"compiled {rules} rule(s) into {len(evaluator.leaves)} tool leaves in "
               f"{took * 1000:.1f} ms", err=True)
    sys.exit(EXIT_OK)

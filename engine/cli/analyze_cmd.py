"""`agp analyze`: proofs about policies with the SMT solver (docs/analyze.md)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from agp.cli.check_cmd import diagnostic_json
from agp.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    echo,
    fail,
    format_option,
    load_engine,
    make_policy_option,
    render_diagnostics,
)
from agp.policy import Policy

if TYPE_CHECKING:
    from agp.analyze.encode import Approximation, Bounds

# agp.analyze (and the z3 solver under it) is imported when the command runs: every other
# command of `agp` starts without paying for it.


@click.command("analyze")
@make_policy_option(True, "A policy file or directory; twice with --compare (OLD, then NEW).")
@click.option("--compare", "comparing", is_flag=True,
              help="Compare two policy sets: what NEW allows that OLD denied, and the reverse.")
@click.option("--assert", "assertion", type=click.Choice(["no-new-allows"]),
              help="With --compare: exit 1 when NEW allows anything OLD did not, 0 when it "
                   "provably does not.")
@click.option("--query", "query_text", metavar="CONDITION",
              help="Is some request decided --decision that satisfies CONDITION (a permit's "
                   "condition, or its clauses: `on ... in ... when ...`)?")
@click.option("--decision", type=click.Choice(["allow", "ask", "deny"]), default="allow",
              show_default=True, help="With --query: the decision asked about.")
@click.option("--timeout", type=click.FloatRange(min=0.001), default=10.0, show_default=True,
              help="Seconds the solver may spend on each check; a check that runs out is "
                   "reported, never taken for an answer.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="With --compare: at most this many differences per direction.")
@format_option("text", "json")
def command(policies: tuple[str, ...], comparing: bool, assertion: str | None,
            query_text: str | None, decision: str, timeout: float, limit: int,
            fmt: str) -> None:
    """Prove what policies can and cannot do, with the z3 SMT solver.

    `agp analyze -p POLICY` reports rules that never match, permits and asks that never decide
    (the envelope, a forbid or an ask always covers them), and rules equivalent to another, as
    warnings in the format of `agp check`. Exit status: 0 no finding, 1 findings, 2 bad usage.

    `agp analyze --compare -p OLD -p NEW` lists, per tool and task, a request that NEW decides
    more permissively than OLD (new-allows) or less (new-denies), each confirmed by both
    evaluators. Exit status: 0 when no difference exists (proved), 1 otherwise.

    `agp analyze -p POLICY --query CONDITION` finds a request decided --decision that satisfies
    CONDITION, or proves that none exists. Exit status: 0 none exists (proved), 1 otherwise.
    """
    if comparing:
        if len(policies) != 2:
            fail("--compare needs two policy sets: -p OLD -p NEW")
        if query_text is not None:
            fail("--query and --compare do not go together")
        _compare(policies, assertion, timeout, limit, fmt)
    if assertion is not None:
        fail("--assert goes with --compare")
    if len(policies) != 1:
        fail("give one policy set (-p POLICY), or two with --compare")
    if query_text is not None:
        _query(_load(policies[0], EXIT_FAIL), query_text, decision, timeout, fmt)
    _findings(_load(policies[0], EXIT_FAIL), timeout, fmt)


def _load(path: str, policy_errors: int) -> Policy:
    return load_engine([path], policy_errors=policy_errors).policy


def _caveats(approximations: tuple[Approximation, ...], bounds: Bounds | None) -> None:
    """What the answers hold under, on stderr: the bounds, then each approximation."""
    if bounds is not None:
        echo("note: within " + "; ".join(bounds.describe()), err=True, style="dim")
    for a in approximations:
        echo(f"note: {a.span}: not encoded exactly: {a.reason} (over-approximated: an absence "
             "still holds, a witness is confirmed by the evaluators)", err=True, style="dim")


def _findings(policy: Policy, timeout: float, fmt: str) -> None:
    from agp.analyze import analyze as find

    report = find(policy, timeout=timeout)
    found = list(report.diagnostics)
    if fmt == "json":
        echo(json.dumps({"diagnostics": [diagnostic_json(d) for d in found],
                         "bounds": report.bounds.describe(),
                         "approximations": [str(a) for a in report.approximations]}, indent=2))
    else:
        if found:
            echo(render_diagnostics(found))
            echo()
        _caveats(report.approximations, report.bounds)
        echo(f"{len(found)} finding(s) in {len(policy.rules)} rule(s)", err=True,
             style="warning" if found else "ok")
    sys.exit(EXIT_FAIL if found else EXIT_OK)


def _compare(policies: tuple[str, ...], assertion: str | None, timeout: float, limit: int,
             fmt: str) -> None:
    from agp.analyze import compare

    old, new = (_load(p, EXIT_USAGE) for p in policies)
    directions = ("new-allows",) if assertion == "no-new-allows" else ("new-allows", "new-denies")
    result = compare(old, new, timeout=timeout, limit=limit, directions=directions)
    if fmt == "json":
        echo(json.dumps(result.to_json(), indent=2))
    else:
        for d in result.differences:
            task = "without a task" if d.task is None else f"in task {d.task}"
            echo(f"{d.direction}: {d.tool} {task}: old {d.old.decision} "
                 f"{d.old.rules}, new {d.new.decision} {d.new.rules}",
                 style="warning" if d.direction == "new-allows" else None)
            echo("  request: " + json.dumps(d.request, sort_keys=False))
        for direction, search in result.searches.items():
            if result.proved_none(direction):
                echo(f"{direction}: none (proved)", style="ok")
            elif not search.proved:
                why = ("the solver ran out of time" if search.timed_out
                       else f"{search.unconfirmed} group(s) with an unconfirmed witness"
                       if search.unconfirmed else f"stopped at --limit {limit}")
                echo(f"{direction}: not proved complete ({why})", err=True, style="warning")
        _caveats(result.approximations, result.bounds)
    if assertion == "no-new-allows":
        sys.exit(EXIT_OK if result.proved_none("new-allows") else EXIT_FAIL)
    clean = all(result.proved_none(d) for d in directions)
    sys.exit(EXIT_OK if clean else EXIT_FAIL)


def _query(policy: Policy, text: str, decision: str, timeout: float, fmt: str) -> None:
    from agp.analyze import query

    answer = query(policy, text, decision, timeout=timeout)
    if answer.diagnostics:
        echo(render_diagnostics(answer.diagnostics), err=True)
        sys.exit(EXIT_USAGE)
    search = answer.search
    assert search is not None
    if answer.request is not None:
        verdict = "witness"
    elif search.proved:
        verdict = "none"
    else:
        verdict = "unknown"
    if fmt == "json":
        echo(json.dumps({
            "answer": verdict, "request": answer.request,
            "decision": answer.decision.to_json() if answer.decision else None,
            "bounds": answer.bounds.describe() if answer.bounds else [],
            "approximations": [str(a) for a in answer.approximations]}, indent=2))
    else:
        if verdict == "witness" and answer.decision is not None:
            echo(f"witness: a request decided {decision}:")
            echo(json.dumps(answer.request, indent=2))
            echo(json.dumps(answer.decision.to_json()))
        elif verdict == "none":
            echo(f"none: no request decided {decision} satisfies the query (proved)", style="ok")
        else:
            why = "the solver ran out of time" if search.timed_out else \
                "no witness the evaluators confirm"
            echo(f"unknown: {why}", style="warning")
        _caveats(answer.approximations, answer.bounds)
    sys.exit(EXIT_OK if verdict == "none" else EXIT_FAIL)

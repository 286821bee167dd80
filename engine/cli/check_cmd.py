"""`agp check PATH...`: parse and check policy sets."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import click

from agp import __version__
from agp.cli.common import (
    echo,
    exit_status,
    format_option,
    render_diagnostics,
    run_or_watch,
    watch_option,
)
from agp.diagnostics import Diagnostic, Severity
from agp.loader import check_paths, policy_files


@click.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--strict", is_flag=True,
              help="Treat warnings as errors (exit 1), for CI: a tool pattern that matches no "
                   "declaration, a comparison that is always false, a default ttl longer than max_ttl.")
@watch_option("a policy file")
@format_option("text", "json", "sarif", "github")
def command(paths: tuple[str, ...], strict: bool, watch: bool, fmt: str) -> None:
    """Parse and check the policy sets at PATHS (files or directories, each one set).

    Prints `file:line:col: error[CODE]: message` with the source line for every problem.
    `--format json` prints one JSON object, `--format sarif` a SARIF 2.1.0 log for code
    scanning, `--format github` workflow annotations (`::error file=...,line=...::`).
    Exit status: 0 when there is no error (warnings allowed, unless --strict), 1 when there are
    errors, 2 bad usage or input (a path that does not exist, a folder without .agp files).
    """
    run_or_watch(lambda: _run(paths, strict, fmt),
                 lambda: policy_files(paths)[0], watch)


def _run(paths: tuple[str, ...], strict: bool, fmt: str) -> None:
    found: list[Diagnostic] = []
    for path in paths:
        _, diagnostics = check_paths([path])
        if strict:  # every warning is reported, and counted, as an error
            diagnostics = [replace(d, severity=Severity.ERROR) for d in diagnostics]
        found.extend(sorted(diagnostics, key=Diagnostic.sort_key))
        if fmt == "text" and diagnostics:
            echo(render_diagnostics(diagnostics))
            echo()
    errors = sum(d.is_error for d in found)
    warnings = len(found) - errors
    if fmt == "json":
        echo(json.dumps({"diagnostics": [diagnostic_json(d) for d in found],
                         "errors": errors, "warnings": warnings}, indent=2))
    elif fmt == "sarif":
        echo(json.dumps(sarif(found), indent=2))
    elif fmt == "github":
        for d in found:
            echo(github_annotation(d))
    if fmt == "text":
        echo(f"{errors} error(s), {warnings} warning(s)" + (" (--strict)" if strict else ""),
             err=True, style="error" if errors else "ok")
    sys.exit(exit_status(found))


def _range(d: Diagnostic) -> dict[str, int]:
    line, column = d.span.source.position(d.span.start)
    end_line, end_column = d.span.source.position(max(d.span.end, d.span.start))
    return {"line": line, "column": column, "end_line": end_line, "end_column": end_column}


def diagnostic_json(d: Diagnostic) -> dict[str, object]:
    return {"file": d.span.source.name, **_range(d), "severity": d.severity.value,
            "code": d.code, "message": d.message, "hint": d.hint,
            "related": [{"file": r.span.source.name, "line": r.span.line,
                         "column": r.span.column, "message": r.message} for r in d.related]}


def sarif(diagnostics: list[Diagnostic]) -> dict[str, object]:
    """A SARIF 2.1.0 log (what GitHub code scanning and most CI dashboards read)."""
    codes = sorted({d.code for d in diagnostics})
    results: list[dict[str, object]] = []
    for d in diagnostics:
        r = _range(d)
        text = d.message + (f" ({d.hint})" if d.hint else "")
        results.append({
            "ruleId": d.code, "ruleIndex": codes.index(d.code),
            "level": "error" if d.is_error else "warning",
            "message": {"text": text},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": d.span.source.name.replace("\\", "/")},
                "region": {"startLine": r["line"], "startColumn": r["column"],
                           "endLine": r["end_line"], "endColumn": max(r["end_column"],
                                                                     r["column"] + 1)
                           if r["end_line"] == r["line"] else r["end_column"]},
            }}],
        })
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "agp", "version": __version__,
                "rules": [{"id": c, "name": c, "shortDescription": {"text": f"agp {c}"}}
                          for c in codes],
            }},
            "results": results,
        }],
    }


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(d: Diagnostic) -> str:
    """A GitHub Actions workflow command: `::error file=F,line=L,col=C,...::message`."""
    r = _range(d)
    level = "error" if d.is_error else "warning"
    props = [f"file={_escape_property(d.span.source.name)}", f"line={r['line']}",
             f"col={r['column']}", f"endLine={r['end_line']}", f"endColumn={r['end_column']}",
             f"title={_escape_property('agp ' + d.code)}"]
    message = d.message + (f" ({d.hint})" if d.hint else "")
    return f"::{level} {','.join(props)}::{_escape_data(message)}"

"""`agp fmt [--check] PATH...`: rewrite policy files in canonical format."""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import click

from agp.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, echo, format_option, render_diagnostics
from agp.source import Source, replaced
from agp.syntax.format import FormatError, format_source


@click.command("fmt")
@click.argument("paths", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--check", is_flag=True, help="Change nothing; list the files that would change.")
@click.option("--diff", "show_diff", is_flag=True, help="Print what would change as a diff.")
@format_option("text", "json")
def command(paths: tuple[str, ...], check: bool, show_diff: bool, fmt: str) -> None:
    """Rewrite the .agp files at PATHS (files or directories) in canonical format.

    Formatting is idempotent, keeps every comment, and never changes a decision. `-` formats
    standard input to standard output. With `--check` nothing is written and the files that
    would change are listed. Exit status: 0, 1 when `--check` finds a file to change, 2 when a
    file does not parse or cannot be read (it is left as it is).
    """
    results: list[dict[str, object]] = []
    bad = changed = False
    for path, problem in _files(paths):
        if problem is not None:
            bad = True
            results.append({"path": path, "changed": False, "error": problem})
            echo(f"agp: error: {problem}", err=True, style="error")
            continue
        result = _one(path, check or show_diff or fmt == "json", show_diff and fmt == "text")
        results.append(result)
        if result.get("error"):
            bad = True
        elif result["changed"]:
            changed = True
            if fmt == "text" and path != "-":
                if check:
                    echo(path)
                elif not show_diff:
                    echo(f"formatted {path}", err=True)
    if fmt == "json":
        echo(json.dumps({"files": results}, indent=2))
    if bad:
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_FAIL if check and changed else EXIT_OK)


def _files(paths: Iterable[str]) -> Iterator[tuple[str, str | None]]:
    for p in paths:
        if p == "-":
            yield "-", None
            continue
        path = Path(p)
        if path.is_dir():
            found = sorted(str(q) for q in path.rglob("*.agp") if q.is_file())
            if not found:
                yield p, f"{p}: no .agp files found"
            for q in found:
                yield q, None
        elif path.is_file():
            yield p, None
        else:
            yield p, f"{p}: no such file or directory"


def _one(path: str, dry: bool, show_diff: bool) -> dict[str, object]:
    name = "<stdin>" if path == "-" else path
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        return _error(path, f"cannot read {name}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        return _error(path, f"{name}: invalid UTF-8 at byte {exc.start}")
    try:
        out = format_source(Source(name, text.replace("\r\n", "\n")))
    except FormatError as exc:
        if exc.diagnostics:
            echo(render_diagnostics(exc.diagnostics, err=True), err=True)
        return _error(path, f"{name} does not parse; left as it is" if exc.diagnostics
                      else str(exc))
    changed = out != text
    if path == "-":
        sys.stdout.write(out)
        return {"path": path, "changed": changed, "error": None}
    if show_diff and changed:
        echo("".join(difflib.unified_diff(text.splitlines(True), out.splitlines(True),
                                          f"{path}", f"{path} (formatted)")))
    if changed and not dry:
        _write(Path(path), out)
    return {"path": path, "changed": changed, "error": None}


def _error(path: str, message: str) -> dict[str, object]:
    echo(f"agp: error: {message}", err=True, style="error")
    return {"path": path, "changed": False, "error": message}


def _write(path: Path, text: str) -> None:
    with replaced(path) as out:
        out.write(text.encode("utf-8"))

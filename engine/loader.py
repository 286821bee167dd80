"""From paths on disk to a checked Policy: read files, follow imports, check."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from agp.check import check
from agp.diagnostics import Diagnostic, error, render_all
from agp.limits import MAX_POLICY_FILE_BYTES
from agp.policy import Policy
from agp.source import Source, Span
from agp.syntax import ParsedFile, ast, parse


class PolicyError(Exception):
    """A policy set that does not load: every diagnostic, with positions."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d.is_error]
        head = f"{len(errors)} error(s) in the policy set"
        super().__init__(head + ("\n" + "\n".join(d.headline() for d in errors) if errors else ""))

    def render(self) -> str:
        return render_all(self.diagnostics)


def _file_error(name: str, message: str, code: str = "io") -> Diagnostic:
    return error(code, Span(Source(name, ""), 0, 0), message)


def policy_files(paths) -> tuple[list[Path], list[Diagnostic]]:
    """The `.agp` files of the given files and directories (recursive, sorted, each once)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    problems: list[Diagnostic] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*.agp") if q.is_file()))
        elif p.is_file():
            found.append(p)
        else:
            problems.append(_file_error(str(p), f"no such file or directory: {p}"))
    seen, unique = set(), []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    if not unique and not problems:
        problems.append(_file_error(str(paths[0]) if paths else ".", "no .agp files found"))
    return unique, problems


def read_source(path: Path, name: str | None = None) -> tuple[Source | None, Diagnostic | None]:
    name = name or str(path)
    try:
        if path.stat().st_size > MAX_POLICY_FILE_BYTES:
            return None, _file_error(name, f"{name} is larger than {MAX_POLICY_FILE_BYTES} bytes",
                                     "limit")
        data = path.read_bytes()
    except OSError as exc:
        return None, _file_error(name, f"cannot read {name}: {exc.strerror or exc}")
    try:
        return Source(name, data.decode("utf-8")), None
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8")
        src = Source(name, good)
        at = len(good)
        return None, error("encoding", Span(src, at, at),
                           f"invalid UTF-8 at byte {exc.start}; policy files are UTF-8")


def stdlib_module(name: str) -> Path | None:
    if not name.startswith("std.") or not name[4:].replace("_", "").isalnum():
        return None
    path = resources.files("agp.stdlib").joinpath(name[4:] + ".agp")
    return Path(str(path)) if path.is_file() else None


def parse_set(sources: list[Source]) -> tuple[list[ParsedFile], list[Diagnostic]]:
    """Parse sources and the standard-library modules they import (transitively, each once)."""
    parsed = [parse(s) for s in sources]
    problems: list[Diagnostic] = []
    loaded: set[str] = set()
    # A standard-library file given as a path is the module itself: import it only once.
    given = {_identity(s.name) for s in sources}
    queue = [imp for f in parsed for imp in f.items if isinstance(imp, ast.Import)]
    while queue:
        imp = queue.pop(0)
        name = imp.module.text
        if name in loaded:
            continue
        path = stdlib_module(name)
        if path is None:
            problems.append(error("unknown-module", imp.module.span, f"unknown module `{name}`",
                                  "the standard library has " + ", ".join(stdlib_names())))
            continue
        loaded.add(name)
        if _identity(str(path)) in given:
            continue
        src, problem = read_source(path)
        if problem:
            problems.append(problem)
            continue
        module = parse(src)
        parsed.append(module)
        queue.extend(i for i in module.items if isinstance(i, ast.Import))
    return parsed, problems


def _identity(name: str) -> str:
    try:
        return str(Path(name).resolve())
    except (OSError, RuntimeError):
        return name


def stdlib_names() -> list[str]:
    root = resources.files("agp.stdlib")
    return sorted("std." + p.name[:-4] for p in root.iterdir() if p.name.endswith(".agp"))


def check_sources(sources: list[Source]) -> tuple[Policy | None, list[Diagnostic]]:
    parsed, problems = parse_set(sources)
    policy, diagnostics = check(parsed)
    diagnostics = problems + diagnostics
    if problems:
        policy = None
    return policy, diagnostics


def check_paths(paths) -> tuple[Policy | None, list[Diagnostic]]:
    """Check a policy set on disk: the Policy (None on any error) and every diagnostic."""
    files, problems = policy_files(paths)
    sources = []
    for f in files:
        src, problem = read_source(f)
        if problem:
            problems.append(problem)
        else:
            sources.append(src)
    policy, diagnostics = check_sources(sources)
    diagnostics = problems + diagnostics
    return (None if problems else policy), diagnostics


def load_policy(paths) -> Policy:
    policy, diagnostics = check_paths(paths)
    if policy is None:
        raise PolicyError(diagnostics)
    return policy

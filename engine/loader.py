"""From paths to a checked policy set: list the files, read them, parse them and the
standard-library modules they import, check the whole set.

`Loader` is that one path, for `agp check` and for the language server alike. The server gives it
`overlays`, the unsaved text of open documents, which stands in for the file on disk (a new file
not yet saved counts too), and overrides its stages to keep what it read and parsed between two
keystrokes. The stages, their order and every diagnostic stay those of `agp check`: a file that is
not UTF-8 or is too large gets the same `error[encoding]` or `error[limit]` in both.

    >>> loaded = Loader({Path("a.agp"): "dataclass public\\npermit r when data <= publik\\n"})
    >>> [d.headline() for d in loaded.load(["a.agp"]).diagnostics]
    ['a.agp:2:23: error[unknown-name]: unknown name `publik`']
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from agp.check.resolve import Checked, check_set
from agp.diagnostics import Diagnostic, error, render_all
from agp.gcpause import no_cyclic_collection
from agp.limits import MAX_POLICY_FILE_BYTES
from agp.policy import Policy
from agp.source import Source, Span
from agp.syntax import ParsedFile, ast, parse

Paths = str | Path | Iterable[str | Path]


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


def _too_large(name: str) -> Diagnostic:
    return _file_error(name, f"{name} is larger than {MAX_POLICY_FILE_BYTES} bytes", "limit")


def policy_files(paths: Paths, overlays: Collection[Path] = ()) -> tuple[list[Path],
                                                                          list[Diagnostic]]:
    """The `.agp` files of the given files and directories (recursive, sorted, each once).

    A path in `overlays` exists even when it is not on disk yet (an unsaved new file).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = list(paths)
    found: list[Path] = []
    problems: list[Diagnostic] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(with_unsaved(sorted(q for q in p.rglob("*.agp") if q.is_file()), p,
                                      overlays))
        elif p.is_file() or p in overlays:
            found.append(p)
        else:
            problems.append(_file_error(str(p), f"no such file or directory: {p}"))
    seen: set[Path] = set()
    unique: list[Path] = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    if not unique and not problems:
        problems.append(_file_error(str(paths[0]) if paths else ".", "no .agp files found"))
    return unique, problems


def with_unsaved(listed: list[Path], directory: Path, overlays: Collection[Path]) -> list[Path]:
    """A directory's `.agp` files on disk, and the overlays under it not saved yet, in order."""
    unsaved = {p for p in overlays if p.suffix == ".agp" and p.is_relative_to(directory)}
    return sorted(unsaved.union(listed)) if unsaved - set(listed) else listed


def read_source(path: Path, name: str | None = None) -> tuple[Source | None, Diagnostic | None]:
    """A file on disk as a Source, or the problem that stops reading it (too large, not UTF-8)."""
    name = name or str(path)
    try:
        if path.stat().st_size > MAX_POLICY_FILE_BYTES:
            return None, _too_large(name)
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


def text_source(name: str, text: str) -> tuple[Source | None, Diagnostic | None]:
    """Unsaved text as a Source, held to the same size limit as a file (in UTF-8 bytes)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_FILE_BYTES:
        return None, _too_large(name)
    return Source(name, text), None


@cache  # package data: its files do not come and go while the process runs
def stdlib_module(name: str) -> Path | None:
    if not name.startswith("std.") or not name[4:].replace("_", "").isalnum():
        return None
    path = resources.files("agp.stdlib").joinpath(name[4:] + ".agp")
    return Path(str(path)) if path.is_file() else None


def stdlib_names() -> list[str]:
    root = resources.files("agp.stdlib")
    return sorted("std." + p.name[:-4] for p in root.iterdir() if p.name.endswith(".agp"))


@dataclass(frozen=True)
class LoadedSet:
    """A policy set as read, parsed and checked."""

    paths: tuple[Path, ...]  # the set's files as listed, readable or not
    files: tuple[ParsedFile, ...]  # those read and parsed, in that order
    modules: tuple[ParsedFile, ...]  # the standard-library modules they import, each once
    problems: tuple[Diagnostic, ...]  # files that cannot be listed or read, unknown modules
    checked: Checked  # the checker's names, lattice and diagnostics

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [*self.problems, *self.checked.diagnostics]

    @property
    def policy(self) -> Policy | None:
        """The Policy; None on any error, reading problems included."""
        return None if self.problems else self.checked.policy


class Loader:
    """The one way from paths to a checked policy set, in stages a subclass may keep results of.

    `overlays` maps a path (as listed: resolved, for the language server) to the text that
    stands in for it.
    """

    def __init__(self, overlays: Mapping[Path, str] | None = None) -> None:
        self.overlays: Mapping[Path, str] = overlays or {}

    def load(self, paths: Paths) -> LoadedSet:
        listed, problems = self.files(paths)
        sources: list[Source] = []
        for path in listed:
            source, problem = self.read(path)
            if problem is not None:
                problems.append(problem)
            elif source is not None:
                sources.append(source)
        return self.load_sources(sources, problems, listed)

    def load_sources(self, sources: list[Source], problems: Iterable[Diagnostic] = (),
                     paths: Iterable[Path] = ()) -> LoadedSet:
        with no_cyclic_collection():  # parsing, like checking, builds a tree and frees little
            files, modules, missing = self.parse_set(sources)
        return LoadedSet(tuple(paths), tuple(files), tuple(modules), (*problems, *missing),
                         self.check([*files, *modules]))

    # ---- the stages -------------------------------------------------------------------------

    def files(self, paths: Paths) -> tuple[list[Path], list[Diagnostic]]:
        return policy_files(paths, self.overlays.keys())

    def read(self, path: Path) -> tuple[Source | None, Diagnostic | None]:
        text = self.overlays.get(path)
        return read_source(path) if text is None else text_source(str(path), text)

    def parse(self, source: Source) -> ParsedFile | None:
        """The parse of one file; a subclass may return None to leave the file out for now."""
        return parse(source)

    def check(self, files: list[ParsedFile]) -> Checked:
        return check_set(files)

    def identity(self, name: str) -> str:
        """What makes two names one file: its real path."""
        try:
            return str(Path(name).resolve())
        except (OSError, RuntimeError):
            return name

    def parse_set(self, sources: list[Source]) -> tuple[list[ParsedFile], list[ParsedFile],
                                                        list[Diagnostic]]:
        """The parsed files, the standard-library modules they import (transitively, each once)
        and the imports that name no module."""
        files = [f for f in map(self.parse, sources) if f is not None]
        modules: list[ParsedFile] = []
        problems: list[Diagnostic] = []
        loaded: set[str] = set()
        given: set[str] | None = None  # the sources' real paths, once an import needs them
        queue = [imp for f in files for imp in f.items if isinstance(imp, ast.Import)]
        while queue:
            imp = queue.pop(0)
            name = imp.module.text
            if name in loaded:
                continue
            path = stdlib_module(name)
            if path is None:
                problems.append(error("unknown-module", imp.module.span,
                                      f"unknown module `{name}`",
                                      "the standard library has " + ", ".join(stdlib_names())))
                continue
            loaded.add(name)
            if given is None:
                given = {self.identity(s.name) for s in sources}
            if self.identity(str(path)) in given:
                continue  # a standard-library file given as a path is the module itself
            src, problem = self.read(path)
            module = self.parse(src) if src is not None else None
            if problem is not None:
                problems.append(problem)
            elif module is not None:
                modules.append(module)
                queue.extend(i for i in module.items if isinstance(i, ast.Import))
        return files, modules, problems


def check_sources(sources: list[Source]) -> tuple[Policy | None, list[Diagnostic]]:
    loaded = Loader().load_sources(sources)
    return loaded.policy, loaded.diagnostics


def check_paths(paths: Paths) -> tuple[Policy | None, list[Diagnostic]]:
    """Check a policy set on disk: the Policy (None on any error) and every diagnostic."""
    loaded = Loader().load(paths)
    return loaded.policy, loaded.diagnostics


def load_policy(paths: Paths) -> Policy:
    policy, diagnostics = check_paths(paths)
    if policy is None:
        raise PolicyError(diagnostics)
    return policy

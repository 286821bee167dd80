"""The policy sets of the workspace, checked by the same checker as `agp check`.

A policy set is a directory (LANGUAGE.md §1): the set a document belongs to is the workspace
folder that contains it, every `.agp` file under it, with the text of open documents in place of
what is on disk. A document outside every folder is a set of its own.

Each file goes through `agp.loader.parse_set` on its own and the result is kept while its text
is unchanged, so that a keystroke re-parses one file; `agp.check.check` then checks the whole
set. The diagnostics are exactly those of `check_sources` (the same two stages on the same files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pygls.uris import from_fs_path, to_fs_path

from agp.check import check
from agp.diagnostics import Diagnostic
from agp.loader import parse_set, policy_files
from agp.lsp.index import Index
from agp.policy import Policy
from agp.source import Source
from agp.syntax import ParsedFile


def uri_to_path(uri: str) -> Path:
    return Path(to_fs_path(uri) or uri)


def path_to_uri(path: str | Path) -> str:
    return from_fs_path(str(path)) or str(path)


@dataclass
class Analysis:
    """One checked policy set: its files, the checker's verdict and a name index."""

    root: Path | None
    files: dict[str, ParsedFile]  # uri -> a user file of the set
    modules: list[ParsedFile]  # the standard-library modules the set imports
    policy: Policy | None
    diagnostics: list[Diagnostic]
    index: Index = field(init=False)

    def __post_init__(self):
        self.index = Index([*self.files.values(), *self.modules])
        self._uris = {id(f.source): uri for uri, f in self.files.items()}

    def uri_of(self, source: Source) -> str:
        """The URI of a source: a file of the set, or a standard-library module on disk."""
        return self._uris.get(id(source)) or path_to_uri(Path(source.name).resolve())

    def file(self, uri: str) -> ParsedFile | None:
        return self.files.get(uri)

    def by_uri(self) -> dict[str, list[Diagnostic]]:
        """Every file's diagnostics, with an empty list for the clean ones (to clear them)."""
        out: dict[str, list[Diagnostic]] = {uri: [] for uri in self.files}
        for d in self.diagnostics:
            out.setdefault(self.uri_of(d.span.source), []).append(d)
        return out


class Project:
    """The workspace's policy sets, given the open documents (uri -> text)."""

    def __init__(self, folders: list[Path]):
        self.folders = sorted({f.resolve() for f in folders}, key=lambda p: -len(p.parts))
        self._parsed: dict[str, tuple[str, list[ParsedFile], list[Diagnostic]]] = {}
        self._disk: dict[Path, tuple[float, str]] = {}
        self._analyses: dict[object, tuple[tuple, Analysis]] = {}

    def root_of(self, uri: str) -> Path | None:
        path = uri_to_path(uri).resolve()
        for folder in self.folders:  # deepest first
            if path.is_relative_to(folder):
                return folder
        return None

    def analyze(self, uri: str, open_docs: dict[str, str]) -> Analysis:
        """The checked set that `uri` belongs to (cached while no file of it changes)."""
        root = self.root_of(uri)
        texts = self._texts(root, uri, open_docs)
        key = root or uri
        stamp = tuple(texts)
        cached = self._analyses.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        analysis = self._check(root, texts)
        self._analyses[key] = (stamp, analysis)
        return analysis

    def _texts(self, root: Path | None, uri: str, open_docs: dict[str, str]) -> list[tuple[str, str]]:
        if root is None:
            text = open_docs.get(uri)
            if text is None:
                text = self._read(uri_to_path(uri))
            return [(uri, text or "")]
        files, _ = policy_files([root])
        uris = {path_to_uri(f.resolve()): f for f in files}
        for open_uri in open_docs:  # a new file not yet saved still belongs to the set
            if open_uri.endswith(".agp") and self.root_of(open_uri) == root:
                uris.setdefault(open_uri, uri_to_path(open_uri))
        out = []
        for u in sorted(uris, key=lambda u: str(uris[u])):  # `agp check`'s order: sorted paths
            text = open_docs[u] if u in open_docs else self._read(uris[u])
            if text is not None:
                out.append((u, text))
        return out

    def _read(self, path: Path) -> str | None:
        try:
            mtime = path.stat().st_mtime
            cached = self._disk.get(path)
            if cached is None or cached[0] != mtime:
                cached = (mtime, path.read_text(encoding="utf-8"))
                self._disk[path] = cached
            return cached[1]
        except (OSError, UnicodeDecodeError):
            return None

    def _parse(self, uri: str, text: str) -> tuple[list[ParsedFile], list[Diagnostic]]:
        cached = self._parsed.get(uri)
        if cached is None or cached[0] != text:
            parsed, problems = parse_set([Source(str(uri_to_path(uri)), text)])
            cached = (text, parsed, problems)
            self._parsed[uri] = cached
        return cached[1], cached[2]

    def _check(self, root: Path | None, texts: list[tuple[str, str]]) -> Analysis:
        files: dict[str, ParsedFile] = {}
        modules: dict[str, ParsedFile] = {}
        problems: list[Diagnostic] = []
        for uri, text in texts:
            parsed, file_problems = self._parse(uri, text)
            files[uri] = parsed[0]
            for module in parsed[1:]:  # each standard-library module once, as `parse_set` does
                modules.setdefault(module.source.name, module)
            problems.extend(file_problems)
        policy, diagnostics = check([*files.values(), *modules.values()])
        return Analysis(root, files, list(modules.values()), None if problems else policy,
                        problems + diagnostics)

    def invalidate(self) -> None:
        self._analyses.clear()

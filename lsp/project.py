"""The policy sets of the workspace, loaded and checked exactly as `agp check` does it.

Which set a file belongs to. A policy set is a directory and every `.agp` file under it
(LANGUAGE.md §1), which is what `agp check DIR` reads. Inside a workspace folder, a file's set is
the topmost directory, from the workspace folder down to the file's own directory, that directly
holds a `.agp` file: in a repository whose root holds no policy, `policies/payments/` and
`policies/support/` are two sets, whatever folder the editor calls the root. These sets never
overlap: every file under a set's directory belongs to that set. A file outside every workspace
folder is a set by itself, like `agp check FILE`. Open documents count with their editor text,
unsaved new files included.

How a set is loaded. Through `agp.loader.Loader`, the loader of `agp check`, with the open
documents as its overlays: the same listing, reading (size limit, UTF-8), parsing, standard-library
imports and checker, so the diagnostics are those of `agp check` on the same texts. `SetLoader`
only keeps what the stages produced between two analyses: a file's parse while its text is
unchanged (a keystroke re-parses one file), a file read from disk while its mtime and size are
unchanged, a set's listing while no directory under it changed, the check while no file of the
set changed.

Parsing and checking run on worker threads, never on the thread that reads the client's messages
(see `context.py`), so the caches are shared between threads: a file's text is parsed once
however many threads ask for it at the same time (the others wait for that parse).

Two kinds of analysis. The diagnostics (`wait=True`) use the current text of every file.
Completion and hover do not analyze at all: they read the current text against the set's last
finished analysis (`latest`, `current.py`), and analyze only when there is none yet. Another
request (definition, symbols, ...) must answer quickly even while a huge file of the same set is
still being parsed: it parses its own file and small files, and for a large file whose current
text is not parsed yet it uses the file's previous parse, or leaves the file out until the
diagnostics have parsed it (`wait=False`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pygls.uris import from_fs_path, to_fs_path

from agp.check.resolve import Checked
from agp.diagnostics import Diagnostic
from agp.loader import LoadedSet, Loader, Paths, policy_files, read_source, with_unsaved
from agp.lsp.occurrences import Occurrences
from agp.policy import Policy
from agp.source import Source
from agp.syntax import ParsedFile, parse

# A request parses another file of the set on the spot only up to this size: a few tens of
# milliseconds of parsing. A larger file is parsed by the diagnostics, off the request's path.
EAGER_PARSE_CHARS = 64 * 1024

Read = tuple[Source | None, Diagnostic | None]


def uri_to_path(uri: str) -> Path:
    return Path(to_fs_path(uri) or uri)


def path_to_uri(path: str | Path) -> str:
    return from_fs_path(str(path)) or str(path)


@dataclass
class Analysis:
    """One loaded and checked policy set, with the URIs of its files."""

    root: Path | None
    loaded: LoadedSet
    uris: dict[str, str]  # the name of each file of the set (its path) -> its URI
    files: dict[str, ParsedFile] = field(init=False)  # uri -> a user file of the set

    def __post_init__(self) -> None:
        self.files = {self.uri_of(f.source): f for f in self.loaded.files}

    @property
    def checked(self) -> Checked:
        return self.loaded.checked

    @property
    def policy(self) -> Policy | None:
        return self.loaded.policy

    @cached_property
    def occurrences(self) -> Occurrences:
        """Where the set's names occur: built on the first request that needs it."""
        return Occurrences([*self.loaded.files, *self.loaded.modules], self.loaded.checked)

    def uri_of(self, source: Source) -> str:
        """The URI of a source: a file of the set, or a standard-library module on disk."""
        return self.uris.get(source.name) or path_to_uri(Path(source.name).resolve())

    def file(self, uri: str) -> ParsedFile | None:
        return self.files.get(uri)

    def by_uri(self) -> dict[str, list[Diagnostic]]:
        """Every file's diagnostics, with an empty list for the clean ones (to clear them)."""
        out: dict[str, list[Diagnostic]] = {uri: [] for uri in self.uris.values()}
        for d in self.loaded.diagnostics:
            out.setdefault(self.uri_of(d.span.source), []).append(d)
        return out

    def same(self, other: Analysis) -> bool:
        """Whether `other` says exactly what this one says (then its occurrences can be kept)."""
        return (self.loaded.checked is other.loaded.checked and self.uris == other.uris
                and self.loaded.problems == other.loaded.problems)


class Project:
    """The workspace's policy sets, given the open documents (uri -> text)."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = sorted({f.resolve() for f in folders}, key=lambda p: -len(p.parts))
        self._lock = threading.Lock()
        self._parsed: dict[str, ParsedFile] = {}  # file name -> its latest finished parse
        self._parsing: dict[tuple[str, str], Future[ParsedFile]] = {}  # (name, text) -> under way
        self._wanted: dict[str, str] = {}  # file name -> the text the last analysis asked for
        self._disk: dict[Path, tuple[int, int, Read]] = {}  # path -> (mtime, size, what was read)
        self._listings: dict[Path, tuple[tuple[tuple[str, int], ...], list[Path]]] = {}
        self._checks: dict[object, tuple[list[ParsedFile], Checked]] = {}  # set -> its last check
        self._holds: dict[Path, tuple[int, bool]] = {}  # directory -> (mtime, holds a .agp)
        self._real_dirs: dict[Path, Path] = {}  # directory -> its resolved path
        self._real_uris: dict[str, Path] = {}  # uri -> its real path
        self._real_names: dict[str, str] = {}  # a file's name -> its real path
        self._analyses: dict[object, Analysis] = {}
        self._members: dict[object, set[str]] = {}  # set -> the files it had at its last analysis

    # ---- which set ------------------------------------------------------------------------

    def root_of(self, uri: str, open_docs: Iterable[str] = ()) -> Path | None:
        """The directory of the policy set `uri` belongs to; None for a file that is a set alone."""
        path = self.path_of(uri)
        ceiling = next((f for f in self.folders if path.is_relative_to(f)), None)  # deepest first
        if ceiling is None or path == ceiling:
            return None
        opened = {self.path_of(u).parent for u in open_docs if u.endswith(".agp")}
        for folder in [*reversed(path.parents)]:
            if folder.is_relative_to(ceiling) and (folder in opened or self._holds_policy(folder)):
                return folder
        return None  # a file that no longer exists: it belongs to no set

    def key(self, uri: str, open_docs: Iterable[str] = ()) -> object:
        """What identifies the set of `uri`: its directory, or the URI of a file that is alone."""
        return self.root_of(uri, open_docs) or uri

    def _holds_policy(self, folder: Path) -> bool:
        """Whether the directory itself (not a subdirectory) holds a `.agp` file on disk."""
        try:
            mtime = folder.stat().st_mtime_ns  # changes when an entry is added or removed
            cached = self._holds.get(folder)
            if cached is None or cached[0] != mtime:
                found = any(p.suffix == ".agp" and p.is_file() for p in folder.iterdir())
                cached = (mtime, found)
                self._holds[folder] = cached
            return cached[1]
        except OSError:
            return False

    # Requests run while another thread may be parsing a huge file: every system call gives the
    # other thread the interpreter for up to 5 ms, so the path of a request makes few of them.

    def real(self, path: Path) -> Path:
        """`path.resolve()`, resolving each directory once (not every component of every file)."""
        parent = self._real_dirs.get(path.parent)
        if parent is None:
            parent = self._real_dirs[path.parent] = path.parent.resolve()
        return parent / path.name

    def path_of(self, uri: str) -> Path:
        """The real path of a document (kept: a request asks it of every open document)."""
        path = self._real_uris.get(uri)
        if path is None:
            path = self._real_uris[uri] = self.real(uri_to_path(uri))
        return path

    def identity(self, name: str) -> str:
        """The real path of a file named by its path (kept, as `path_of`)."""
        real = self._real_names.get(name)
        if real is None:
            real = self._real_names[name] = str(self.real(Path(name)))
        return real

    # ---- analysis -------------------------------------------------------------------------

    def analyze(self, uri: str, open_docs: Mapping[str, str], wait: bool = True) -> Analysis:
        """The checked set that `uri` belongs to (cached while no file of it changes).

        `wait=False` is for requests: see the module's docstring.
        """
        root = self.root_of(uri, open_docs)
        key = root or uri
        clients = {self.path_of(u): u for u in open_docs if u.endswith(".agp")}
        overlays = {path: open_docs[u] for path, u in clients.items()}
        target = self.path_of(uri)

        def eager(source: Source) -> bool:
            return wait or source.name == str(target) or len(source.text) <= EAGER_PARSE_CHARS

        loader = SetLoader(self, key, overlays, eager)
        loaded = loader.load(root or target)
        with self._lock:
            self._members[key] = loader.seen
            self._forget_left_files()
        uris = {str(p): clients.get(p) or path_to_uri(p) for p in loaded.paths}
        analysis = Analysis(root, loaded, uris)
        cached = self._analyses.get(key)
        if cached is not None and cached.same(analysis):
            return cached
        self._analyses[key] = analysis
        return analysis

    def latest(self, uri: str, open_docs: Mapping[str, str]) -> Analysis | None:
        """The last finished analysis of the set of `uri`, whatever text it read: what completion
        and hover answer from (see `current.py`). None before the set's first analysis."""
        return self._analyses.get(self.key(uri, open_docs))

    def forget(self, uri: str) -> None:
        """A file that was a set by itself is closed: drop what is kept about it."""
        with self._lock:
            self._members.pop(uri, None)
            self._analyses.pop(uri, None)
            self._checks.pop(uri, None)
            self._forget_left_files()

    def _forget_left_files(self) -> None:
        """Drop the parses of files that are in no set any more (closed and never saved, deleted):
        a huge file's parse is millions of objects, which every full garbage collection walks."""
        members = set().union(*self._members.values())
        for name in [n for n in self._parsed if n not in members]:
            del self._parsed[name]
            self._wanted.pop(name, None)

    def parse(self, source: Source, wait: bool) -> ParsedFile | None:
        """The parse of this text; without `wait`, the latest parse of the file if this text's
        is not ready (None if there is none), instead of parsing it now."""
        name, text = source.name, source.text
        with self._lock:
            self._wanted[name] = text
            done = self._parsed.get(name)
            if done is not None and done.source.text == text:
                return done
            running = self._parsing.get((name, text))
            if not wait:
                return done
            mine = running is None
            if running is None:
                running = self._parsing[(name, text)] = Future()
        if not mine:
            return running.result()
        try:
            parsed = parse(source)
            with self._lock:
                # A slow parse of an older text must not replace a newer one.
                if self._wanted.get(name) == text or name not in self._parsed:
                    self._parsed[name] = parsed
            running.set_result(parsed)
            return parsed
        except BaseException as exc:
            running.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._parsing.pop((name, text), None)

    def read(self, path: Path) -> Read:
        """A file on disk, read as `agp check` reads it, kept while its mtime and size hold."""
        try:
            stat = path.stat()
        except OSError:
            return read_source(path)  # gone: the same problem as `agp check` reports
        cached = self._disk.get(path)
        if cached is None or cached[:2] != (stat.st_mtime_ns, stat.st_size):
            cached = (stat.st_mtime_ns, stat.st_size, read_source(path))
            self._disk[path] = cached
        return cached[2]

    def listing(self, root: Path) -> list[Path]:
        """The set's `.agp` files on disk, as `agp check` lists them; listed again only when a
        directory under the set changed (a file added, removed or renamed changes its mtime)."""
        stamp = []
        for folder, _, _ in os.walk(root):  # like `rglob`, not into linked directories
            try:
                stamp.append((folder, os.stat(folder).st_mtime_ns))
            except OSError:
                continue
        cached = self._listings.get(root)
        if cached is None or cached[0] != tuple(stamp):
            cached = (tuple(stamp), policy_files([root])[0])
            self._listings[root] = cached
        return cached[1]

    def check(self, key: object, files: list[ParsedFile],
              check: Callable[[list[ParsedFile]], Checked]) -> Checked:
        """The set's check, kept while its parsed files are the same objects."""
        cached = self._checks.get(key)
        if cached is not None and len(cached[0]) == len(files) and all(
                a is b for a, b in zip(cached[0], files, strict=True)):
            return cached[1]
        checked = check(files)
        self._checks[key] = (files, checked)
        return checked

    def sets(self) -> list[str]:
        """One file of every policy set under the workspace folders (it stands for its set)."""
        seen: dict[object, str] = {}
        for folder in self.folders:
            for path in sorted(folder.rglob("*.agp")):
                uri = path_to_uri(self.real(path))
                seen.setdefault(self.key(uri), uri)
        return list(seen.values())


class SetLoader(Loader):
    """`agp check`'s loader for one analysis of one set, keeping what its stages produce in the
    Project (the overlays, the open documents, are never kept: they are the newest text)."""

    def __init__(self, project: Project, key: object, overlays: Mapping[Path, str],
                 eager: Callable[[Source], bool]) -> None:
        super().__init__(overlays)
        self.project = project
        self.key = key
        self.eager = eager
        self.seen: set[str] = set()  # every file this analysis read, parsed now or not

    def files(self, paths: Paths) -> tuple[list[Path], list[Diagnostic]]:
        """A set's directory is listed from the Project's listing, plus the unsaved files."""
        root = Path(paths) if isinstance(paths, (str, Path)) else None
        if root is None or root in self.overlays or not root.is_dir():
            return super().files(paths)
        return with_unsaved(self.project.listing(root), root, self.overlays.keys()), []

    def read(self, path: Path) -> Read:
        return super().read(path) if path in self.overlays else self.project.read(path)

    def parse(self, source: Source) -> ParsedFile | None:
        self.seen.add(source.name)
        return self.project.parse(source, self.eager(source))

    def check(self, files: list[ParsedFile]) -> Checked:
        return self.project.check(self.key, files, super().check)

    def identity(self, name: str) -> str:
        return self.project.identity(name)

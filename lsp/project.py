"""The policy sets of the workspace, checked by the same checker as `agp check`.

Which set a file belongs to. A policy set is a directory and every `.agp` file under it
(LANGUAGE.md §1), which is what `agp check DIR` reads. Inside a workspace folder, a file's set is
the topmost directory, from the workspace folder down to the file's own directory, that directly
holds a `.agp` file: in a repository whose root holds no policy, `policies/payments/` and
`policies/support/` are two sets, whatever folder the editor calls the root. These sets never
overlap: every file under a set's directory belongs to that set. A file outside every workspace
folder is a set by itself, like `agp check FILE`. Open documents count with their editor text,
unsaved new files included.

Each file goes through `agp.loader.parse_set` on its own and the result is kept while its text
is unchanged, so that a keystroke re-parses one file; `agp.check.check` then checks the whole
set. The diagnostics are exactly those of `check_sources` (the same two stages on the same files).

Parsing and checking run on worker threads, never on the thread that reads the client's messages
(see `context.py`), so the caches are shared between threads: a file's text is parsed once
however many threads ask for it at the same time (the others wait for that parse).

Two kinds of analysis. The diagnostics (`wait=True`) use the current text of every file. A
request (hover, completion, ...) must answer quickly even while a huge file of the same set is
still being parsed: it parses its own file and small files, and for a large file whose current
text is not parsed yet it uses the file's previous parse, or leaves the file out until the
diagnostics have parsed it (`wait=False`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from pygls.uris import from_fs_path, to_fs_path

from agp.check import check
from agp.diagnostics import Diagnostic, error
from agp.limits import MAX_POLICY_FILE_BYTES
from agp.loader import parse_set, policy_files, read_source
from agp.lsp.index import Index
from agp.policy import Policy
from agp.source import Source, Span
from agp.syntax import ParsedFile

# A request parses another file of the set on the spot only up to this size: a few tens of
# milliseconds of parsing. A larger file is parsed by the diagnostics, off the request's path.
EAGER_PARSE_CHARS = 64 * 1024


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


@dataclass(frozen=True)
class Parsed:
    """One text of one file, parsed: the file, the stdlib modules it imports, import problems."""

    text: str
    files: list[ParsedFile]
    problems: list[Diagnostic]


@dataclass(frozen=True)
class Text:
    """A file of a set as the analysis sees it: its text, or the problem that stops reading it."""

    uri: str
    text: str
    problem: Diagnostic | None = None


class Project:
    """The workspace's policy sets, given the open documents (uri -> text)."""

    def __init__(self, folders: list[Path]):
        self.folders = sorted({f.resolve() for f in folders}, key=lambda p: -len(p.parts))
        self._lock = threading.Lock()
        self._parsed: dict[str, Parsed] = {}  # uri -> its latest finished parse
        self._parsing: dict[tuple[str, str], Future] = {}  # (uri, text) -> a parse under way
        self._wanted: dict[str, str] = {}  # uri -> the text the last analysis asked for
        self._disk: dict[Path, tuple[float, int, Text]] = {}
        self._holds: dict[Path, tuple[int, bool]] = {}  # directory -> (mtime, holds a .agp)
        self._real_dirs: dict[Path, Path] = {}  # directory -> its resolved path
        self._listings: dict[Path, tuple[tuple, list[Path]]] = {}  # set -> (dir mtimes, files)
        self._analyses: dict[object, tuple[tuple, Analysis]] = {}
        self._members: dict[object, set[str]] = {}  # set -> the uris it had at its last analysis

    # ---- which set ------------------------------------------------------------------------

    def root_of(self, uri: str, open_docs=()) -> Path | None:
        """The directory of the policy set `uri` belongs to; None for a file that is a set alone."""
        path = self._real(uri_to_path(uri))
        ceiling = next((f for f in self.folders if path.is_relative_to(f)), None)  # deepest first
        if ceiling is None or path == ceiling:
            return None
        opened = {self._real(uri_to_path(u)).parent for u in open_docs if u.endswith(".agp")}
        for folder in [*reversed(path.parents)]:
            if folder.is_relative_to(ceiling) and (folder in opened or self._holds_policy(folder)):
                return folder
        return None  # a file that no longer exists: it belongs to no set

    def key(self, uri: str, open_docs=()) -> object:
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

    # ---- analysis -------------------------------------------------------------------------

    def analyze(self, uri: str, open_docs: dict[str, str], wait: bool = True) -> Analysis:
        """The checked set that `uri` belongs to (cached while no file of it changes).

        `wait=False` is for requests: see the module's docstring.
        """
        root = self.root_of(uri, open_docs)
        texts = self._texts(root, uri, open_docs)
        with self._lock:
            self._wanted.update((t.uri, t.text) for t in texts if t.problem is None)
            self._members[root or uri] = {t.uri for t in texts}
            self._forget_left_files()
        parses: list[tuple[Text, Parsed | None]] = []
        for t in texts:
            if t.problem is not None:
                parses.append((t, None))
                continue
            eager = wait or t.uri == uri or len(t.text) <= EAGER_PARSE_CHARS
            parsed = self._parse(t.uri, t.text, eager)
            if parsed is not None:
                parses.append((t, parsed))
        key = root or uri
        stamp = tuple((t.uri, p.text if p else t.problem.message) for t, p in parses)
        cached = self._analyses.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        analysis = self._check(root, parses)
        self._analyses[key] = (stamp, analysis)
        return analysis

    def _texts(self, root: Path | None, uri: str, open_docs: dict[str, str]) -> list[Text]:
        if root is None:
            text = open_docs.get(uri)
            alone = self._open(uri, text) if text is not None else self._read(uri)
            return [alone] if alone is not None else []
        uris = {path_to_uri(f): f for f in self._files(root)}
        for open_uri in open_docs:  # a new file not yet saved still belongs to the set
            if open_uri.endswith(".agp") and self._real(uri_to_path(open_uri)).is_relative_to(root):
                uris.setdefault(open_uri, uri_to_path(open_uri))
        out = []
        for u in sorted(uris, key=lambda u: str(uris[u])):  # `agp check`'s order: sorted paths
            out.append(self._open(u, open_docs[u]) if u in open_docs else self._read(u))
        return [t for t in out if t is not None]

    # Requests run while another thread may be parsing a huge file: every system call gives the
    # other thread the interpreter for up to 5 ms, so the path of a request makes few of them.

    def _real(self, path: Path) -> Path:
        """`path.resolve()`, resolving each directory once (not every component of every file)."""
        parent = self._real_dirs.get(path.parent)
        if parent is None:
            parent = self._real_dirs[path.parent] = path.parent.resolve()
        return parent / path.name

    def _files(self, root: Path) -> list[Path]:
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
            files, _ = policy_files([root])
            cached = (tuple(stamp), [self._real(f) for f in files])
            self._listings[root] = cached
        return cached[1]

    @staticmethod
    def _open(uri: str, text: str) -> Text:
        if len(text) > MAX_POLICY_FILE_BYTES:  # characters: a lower bound of the UTF-8 size
            name = str(uri_to_path(uri))
            return Text(uri, "", error("limit", Span(Source(name, ""), 0, 0),
                                       f"{name} is larger than {MAX_POLICY_FILE_BYTES} bytes"))
        return Text(uri, text)

    def _read(self, uri: str) -> Text | None:
        """A file on disk, read as `agp check` reads it (size limit, UTF-8), cached by mtime."""
        path = uri_to_path(uri)
        try:
            stat = path.stat()
        except OSError:
            return None  # gone since the directory was listed
        cached = self._disk.get(path)
        if cached is None or cached[:2] != (stat.st_mtime_ns, stat.st_size):
            source, problem = read_source(path)
            cached = (stat.st_mtime_ns, stat.st_size,
                      Text(uri, source.text if source else "", problem))
            self._disk[path] = cached
        return cached[2]

    def forget(self, uri: str) -> None:
        """A file that was a set by itself is closed: drop what is kept about it."""
        with self._lock:
            self._members.pop(uri, None)
            self._analyses.pop(uri, None)
            self._forget_left_files()

    def _forget_left_files(self) -> None:
        """Drop the parses of files that are in no set any more (closed and never saved, deleted):
        a huge file's parse is millions of objects, which every full garbage collection walks."""
        members = set().union(*self._members.values())
        for uri in [u for u in self._parsed if u not in members]:
            del self._parsed[uri]
            self._wanted.pop(uri, None)

    def _parse(self, uri: str, text: str, wait: bool) -> Parsed | None:
        """The parse of this text; without `wait`, the latest parse of the file if this text's
        is not ready (None if there is none), instead of parsing it now."""
        with self._lock:
            done = self._parsed.get(uri)
            if done is not None and done.text == text:
                return done
            running = self._parsing.get((uri, text))
            if not wait:
                return done
            if running is None:
                running = self._parsing[(uri, text)] = Future()
                mine = True
            else:
                mine = False
        if not mine:
            return running.result()
        try:
            files, problems = parse_set([Source(str(uri_to_path(uri)), text)])
            parsed = Parsed(text, files, problems)
            with self._lock:
                # A slow parse of an older text must not replace a newer one.
                if self._wanted.get(uri) == text or uri not in self._parsed:
                    self._parsed[uri] = parsed
            running.set_result(parsed)
            return parsed
        except BaseException as exc:
            running.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._parsing.pop((uri, text), None)

    def _check(self, root: Path | None, parses: list[tuple[Text, Parsed | None]]) -> Analysis:
        files: dict[str, ParsedFile] = {}
        modules: dict[str, ParsedFile] = {}
        problems: list[Diagnostic] = []
        for t, parsed in parses:
            if parsed is None:
                problems.append(t.problem)
                continue
            files[t.uri] = parsed.files[0]
            for module in parsed.files[1:]:  # each standard-library module once, as `parse_set`
                modules.setdefault(module.source.name, module)
            problems.extend(parsed.problems)
        policy, diagnostics = check([*files.values(), *modules.values()])
        return Analysis(root, files, list(modules.values()), None if problems else policy,
                        problems + diagnostics)

    def sets(self) -> list[str]:
        """One file of every policy set under the workspace folders (it stands for its set)."""
        seen: dict[object, str] = {}
        for folder in self.folders:
            for path in sorted(folder.rglob("*.agp")):
                uri = path_to_uri(self._real(path))
                seen.setdefault(self.key(uri), uri)
        return list(seen.values())

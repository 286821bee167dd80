"""The server object every feature receives: the workspace's policy sets and the open documents."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from agp import __version__
from agp.lsp.positions import LineIndex, line_index
from agp.lsp.project import Analysis, Project, uri_to_path
from agp.syntax import ParsedFile


@dataclass
class At:
    """A document position resolved against its policy set."""

    analysis: Analysis
    file: ParsedFile
    offset: int
    lines: LineIndex


class AgpServer(LanguageServer):
    def __init__(self):
        super().__init__("agp", __version__,
                         text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.project = Project([])
        self.debounce = 0.05  # seconds; `initializationOptions.debounce` overrides it
        self.pending: dict[object, asyncio.Task] = {}  # set -> its scheduled check
        self.published: dict[object, set[str]] = {}  # set -> files last given diagnostics

    def start_project(self) -> None:
        folders = [uri_to_path(f.uri) for f in self.workspace.folders.values()]
        if not folders and self.workspace.root_uri:
            folders = [uri_to_path(self.workspace.root_uri)]
        self.project = Project(folders)

    @property
    def encoding(self) -> str:
        return str(self.workspace.position_encoding or "utf-16")

    def open_docs(self) -> dict[str, str]:
        return {uri: doc.source for uri, doc in self.workspace.text_documents.items()}

    def analysis(self, uri: str) -> Analysis:
        return self.project.analyze(uri, self.open_docs())

    def lines(self, text: str) -> LineIndex:
        return line_index(text, self.encoding)

    def at(self, uri: str, position: lsp.Position | None = None) -> At | None:
        analysis = self.analysis(uri)
        file = analysis.file(uri)
        if file is None:
            return None
        lines = self.lines(file.source.text)
        offset = lines.offset(position) if position is not None else 0
        return At(analysis, file, offset, lines)

    def range(self, span) -> lsp.Range:
        return self.lines(span.source.text).range(span.start, span.end)

    def location(self, analysis: Analysis, span) -> lsp.Location:
        return lsp.Location(uri=analysis.uri_of(span.source), range=self.range(span))

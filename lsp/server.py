"""`agp lsp`: the language server. Wiring only: each feature lives in its own module."""

from __future__ import annotations

from lsprotocol import types as lsp

from agp.lsp import (
    code_actions,
    code_lens,
    completion,
    diagnostics,
    folding,
    formatting,
    hover,
    navigation,
    rename,
    semantic_tokens,
    symbols,
)
from agp.lsp.context import AgpServer


def build() -> AgpServer:
    ls = AgpServer()

    @ls.feature(lsp.INITIALIZE)
    def initialize(params: lsp.InitializeParams) -> None:
        options = params.initialization_options or {}
        if isinstance(options, dict) and isinstance(options.get("debounce"), (int, float)):
            ls.debounce = max(0.0, float(options["debounce"]) / 1000)  # milliseconds

    @ls.feature(lsp.INITIALIZED)
    def initialized(params: lsp.InitializedParams) -> None:
        ls.start_project()

    @ls.feature(lsp.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def folders_changed(params: lsp.DidChangeWorkspaceFoldersParams) -> None:
        ls.start_project()

    ls.feature(lsp.TEXT_DOCUMENT_DID_OPEN)(diagnostics.did_open)
    ls.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)(diagnostics.did_change)
    ls.feature(lsp.TEXT_DOCUMENT_DID_SAVE)(diagnostics.did_save)
    ls.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)(diagnostics.did_close)
    ls.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)(diagnostics.did_change_watched_files)
    ls.feature(lsp.TEXT_DOCUMENT_HOVER)(hover.hover)
    ls.feature(lsp.TEXT_DOCUMENT_COMPLETION,
               lsp.CompletionOptions(trigger_characters=completion.TRIGGERS))(completion.completion)
    ls.feature(lsp.TEXT_DOCUMENT_DEFINITION)(navigation.definition)
    ls.feature(lsp.TEXT_DOCUMENT_REFERENCES)(navigation.references)
    ls.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)(rename.prepare_rename)
    ls.feature(lsp.TEXT_DOCUMENT_RENAME)(rename.rename)
    ls.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)(symbols.document_symbol)
    ls.feature(lsp.WORKSPACE_SYMBOL)(symbols.workspace_symbol)
    ls.feature(lsp.TEXT_DOCUMENT_FOLDING_RANGE)(folding.folding_range)
    ls.feature(lsp.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL,
               semantic_tokens.LEGEND)(semantic_tokens.semantic_tokens)
    ls.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(
        code_action_kinds=[lsp.CodeActionKind.QuickFix]))(code_actions.code_action)
    ls.feature(lsp.TEXT_DOCUMENT_CODE_LENS)(code_lens.code_lens)
    ls.command(code_lens.RUN_TESTS)(code_lens.run_tests)
    ls.feature(lsp.TEXT_DOCUMENT_FORMATTING)(formatting.formatting)
    return ls


def main() -> None:
    build().start_io()

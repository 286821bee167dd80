"""Which policy set a file belongs to, and files that change on disk while not open.

The workspace folder here is a repository root (what Neovim and Helix pick with `.git`) that
holds two policy sets, `payments/` and `support/`, each with the same names and its own
`defaults` block: two sets, as `agp check payments` and `agp check support` see them, never one.
"""

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from support import TIMEOUT, open_doc, opened, position_of, until

from agp.loader import check_paths

pytestmark = pytest.mark.asyncio

DECLARATIONS = """\
import std.intents
dataclass public
agent bot "spiffe://acme.com/agents/{name}"
tool {name}.call {{ intent read }}
defaults {{ ttl 5m }}
"""
RULES = "permit calls on {name}.call by bot\n"


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A repository with two policy sets; a set may have subfolders."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "README.md").write_text("two policy sets\n", encoding="utf-8")
    for name in ("payments", "support"):
        folder = repo / "policies" / name
        (folder / "rules").mkdir(parents=True)
        (folder / "declarations.agp").write_text(DECLARATIONS.format(name=name), encoding="utf-8")
        (folder / "rules" / "rules.agp").write_text(RULES.format(name=name), encoding="utf-8")
    return repo


async def test_two_sets_in_one_repository_are_checked_apart(client, workspace):
    sets = [workspace / "policies" / name for name in ("payments", "support")]
    for folder in sets:
        assert check_paths([folder])[1] == []  # what `agp check FOLDER` says
    uris = [open_doc(client, folder / "declarations.agp") for folder in sets]
    rules = [(folder / "rules" / "rules.agp").as_uri() for folder in sets]
    # Every file of both sets is published, clean: no "declared twice", no second `defaults`,
    # and a rule in a subfolder still sees the declarations of its set.
    await until(client, lambda: all(u in client.diagnostics for u in uris + rules))
    for u in uris + rules:
        assert not client.diagnostics[u], (u, client.diagnostics[u])
    # Each set is its own namespace: a name declared only in `support/` is unknown in `payments/`.
    text = (sets[0] / "rules" / "rules.agp").read_text(encoding="utf-8")
    text += "permit other on support.call by bot\n"
    payments_rules = open_doc(client, sets[0] / "rules" / "rules.agp", text)
    diags = await until(client, lambda: client.diagnostics[payments_rules])
    assert [(d.code, d.message) for d in diags] == [
        ("unknown-tool", "tool pattern `support.call` matches no declared tool")]
    # Go to definition stays in the set.
    [loc] = await client.text_document_definition_async(lsp.DefinitionParams(
        text_document=lsp.TextDocumentIdentifier(uri=payments_rules),
        position=position_of(text, "bot")))
    assert loc.uri == uris[0]


async def test_a_file_at_the_top_makes_one_set_as_agp_check_would(client, workspace):
    # `agp check policies` reads both folders as one set; so does the editor once the folder
    # above them holds a policy file itself.
    top = workspace / "policies" / "shared.agp"
    uri = await opened(client, top, "dataclass shared\n")
    _, expected = check_paths([workspace / "policies"])
    assert any(d.code == "duplicate" for d in expected)
    payments = (workspace / "policies" / "payments" / "declarations.agp").as_uri()
    await until(client, lambda: client.diagnostics.get(payments))
    assert {d.code for d in client.diagnostics[payments]} == {"duplicate"}
    assert not client.diagnostics[uri]


async def _registered(client):
    await asyncio.wait_for(client.registered.wait(), TIMEOUT)


def _changed(client, path: Path, kind: lsp.FileChangeType) -> None:
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
        changes=[lsp.FileEvent(uri=path.as_uri(), type=kind)]))


async def test_files_changed_on_disk_are_watched_and_rechecked(client, workspace):
    await _registered(client)
    [registration] = client.registrations
    assert registration.method == lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES
    assert [w["globPattern"] for w in registration.register_options["watchers"]] == ["**/*.agp"]

    folder = workspace / "policies" / "payments"
    rules = folder / "rules" / "rules.agp"
    uri = await opened(client, rules)
    assert not client.diagnostics[uri]
    # Another program adds a file that declares `bot` again: the open file's set is checked
    # again without any edit, and the new file, never opened, gets its diagnostics too.
    extra = folder / "extra.agp"
    extra.write_text('agent bot "spiffe://x/y"\n', encoding="utf-8")
    _changed(client, extra, lsp.FileChangeType.Created)
    await until(client, lambda: client.diagnostics.get(extra.as_uri()))
    assert [d.code for d in client.diagnostics[extra.as_uri()]] == ["duplicate"]
    # It changes on disk: the set is checked again.
    extra.write_text("agent bot_two \"spiffe://x/y\"\npermit p on payments.call by bot_too\n",
                     encoding="utf-8")
    _changed(client, extra, lsp.FileChangeType.Changed)
    await until(client, lambda: [d.code for d in client.diagnostics[extra.as_uri()]]
                == ["unknown-agent"])
    # A declaration the open file uses is removed on disk: the open file shows it.
    declarations = folder / "declarations.agp"
    declarations.write_text(DECLARATIONS.format(name="payments").replace("agent bot", "agent bt"),
                            encoding="utf-8")
    _changed(client, declarations, lsp.FileChangeType.Changed)
    await until(client, lambda: client.diagnostics[uri])
    assert [d.code for d in client.diagnostics[uri]] == ["unknown-agent"]
    # A file deleted on disk leaves its set and its diagnostics are cleared.
    extra.unlink()
    _changed(client, extra, lsp.FileChangeType.Deleted)
    await until(client, lambda: not client.diagnostics[extra.as_uri()])

"""`agp analyze`'s findings in the editor: hints at the rule names, after the checker's
diagnostics, gone once the rule is fixed (agp.lsp.analysis)."""

from pathlib import Path

import pytest
from lsprotocol import types as lsp
from support import change_doc, open_doc, until

pytestmark = pytest.mark.asyncio

POLICY = """\
dataclass public
intent read
tool crm.lookup { intent read }
permit lookups on crm.lookup
forbid never on crm.lookup when 1 > 2
"""


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A set of one small policy (the analysis of a bigger one only takes longer)."""
    root = tmp_path / "policies"
    root.mkdir()
    (root / "p.agp").write_text(POLICY, encoding="utf-8")
    return root


def hints(client, uri):
    return [d for d in client.diagnostics.get(uri, [])
            if d.severity == lsp.DiagnosticSeverity.Hint]


async def test_findings_are_hints_at_the_rule_name_and_clear_when_fixed(client, workspace):
    uri = open_doc(client, workspace / "p.agp")
    found = await until(client, lambda: hints(client, uri))
    assert [(d.code, d.source) for d in found] == [("never-matches", "agp analyze")]
    start, end = found[0].range.start, found[0].range.end
    assert (start.line, start.character, end.character) == (4, 7, 12)  # `never`
    assert "can never match" in found[0].message

    # A change that fixes the rule and plants another: the next analysis has only the new one.
    fixed = POLICY.replace("1 > 2", "args has x") + "ask later on crm.lookup when 2 > 3\n"
    change_doc(client, uri, fixed, 2)
    found = await until(client, lambda: [d for d in hints(client, uri)
                                         if d.range.start.line == 5])
    assert [(d.code, d.range.start.line) for d in hints(client, uri)] == [("never-matches", 5)]
    # and a checker error: no analysis, the error alone
    change_doc(client, uri, POLICY + "permit broken on crm.lookup when nosuch\n", 3)
    errors = await until(client, lambda: [d for d in client.diagnostics[uri]
                                          if d.severity == lsp.DiagnosticSeverity.Error])
    assert errors and not hints(client, uri)

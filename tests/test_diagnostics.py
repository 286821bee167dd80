"""A catalogue of policy mistakes: each names its code, the exact underlined text and a hint.

The snapshots hold the full rendering (source line and caret) and were read one by one.
"""

import pytest

from agp.diagnostics import render_all
from agp.loader import check_sources
from agp.source import Source

HEADER = """import std.intents
dataclass public
dataclass pii > public
agent bot "spiffe://acme/bot"
tool crm.lookup { intent read  data pii  args { customer: string, limit?: number } }
task ticket { params { customer: string }  tools crm.*  intents read  data <= pii }
"""

# name -> (policy text after HEADER, code, underlined text, hint or None)
CASES = {
    "unknown-class-in-tool": ("tool a.b { data piii }\n", "unknown-class", "piii",
                              "did you mean `pii`?"),
    "unknown-intent-in-task": ("task t2 { intents raed }\n", "unknown-intent", "raed",
                               "did you mean `read`?"),
    "unknown-agent-in-by": ("permit r on crm.lookup by bto\n", "unknown-agent", "bto",
                            "did you mean `bot`?"),
    "unknown-task-in-in": ("permit r on crm.lookup in tiket\n", "unknown-task", "tiket",
                           "did you mean `ticket`?"),
    "class-where-agent-expected": ("permit r by pii\n", "unknown-agent", "pii", None),
    "args-field-not-in-schema": ("permit r on crm.lookup when args.custmer == \"c\"\n",
                                 "unknown-field", "custmer", "did you mean `customer`?"),
    "params-field-not-in-schema": ("permit r in ticket when task.params.cust == \"c\"\n",
                                   "unknown-field", "cust", None),
    "ordering-number-with-string": ("permit r on crm.lookup when args.limit > \"10\"\n",
                                    "type-mismatch", 'args.limit > "10"', None),
    "condition-not-boolean": ("permit r on crm.lookup when args.limit\n", "type-mismatch",
                              "args.limit", None),
    "unknown-function": ("permit r when lowr(tool) == \"x\"\n", "unknown-function", "lowr",
                         "did you mean `lower`?"),
    "wrong-arity": ("permit r when startswith(tool)\n", "type-mismatch", "startswith(tool)",
                    "signature: startswith(string, string) -> bool"),
    "duration-runs-into-letters": ("permit r when task.age > 10min\n", "syntax", "10min", None),
    "unknown-name": ("forbid f when chian.depth > 3\n", "unknown-name", "chian",
                     "did you mean `chain`?"),
    "data-compared-to-unknown-class": ("forbid f when data >= restricted\n", "unknown-name",
                                       "restricted", None),
    "reserved-name-declared": ("dataclass target\n", "reserved-name", "target", None),
    "unknown-module": ("import std.intent\n", "unknown-module", "std.intent", None),
    "unknown-schema-type": ("tool x.y { args { a: strng } }\n", "unknown-type", "strng",
                            "did you mean `string`?"),
    "is-unknown-agent": ("permit r when agent is bott\n", "unknown-name", "bott",
                         "did you mean `bot`?"),
    "unterminated-string": ('agent a "spiffe://x\n', "syntax", '"', None),
    "unexpected-token": ("permit r on crm.lookup when when\n", "syntax", "when", None),
    "cycle": ("dataclass a > b\ndataclass b > a\n", "cycle", "a", None),
    "matches-non-string": ("permit r when chain.depth matches \"1*\"\n", "type-mismatch",
                           "chain.depth", None),
}


def diagnose(text: str, name: str = "policy.agp"):
    _, diagnostics = check_sources([Source(name, text)])
    return diagnostics


@pytest.mark.parametrize("case", sorted(CASES))
def test_catalogue(case, snapshot):
    body, code, underlined, hint = CASES[case]
    diagnostics = diagnose(HEADER + body)
    matching = [d for d in diagnostics if d.code == code and d.span.text == underlined]
    assert matching, [(d.code, d.span.text, d.message) for d in diagnostics]
    if hint is not None:
        assert matching[0].hint == hint
    assert matching[0].span.line > HEADER.count("\n")  # points into the mistake, not the header
    assert render_all(diagnostics) == snapshot


def test_header_is_clean():
    assert diagnose(HEADER) == []


def test_duplicates_are_reported_at_both_places():
    diagnostics = diagnose("dataclass pii\nintent read\nintent pii\n")
    places = sorted((d.span.line, d.span.column) for d in diagnostics if d.code == "duplicate")
    assert places == [(1, 11), (3, 8)]


def test_duplicates_across_files_point_at_each_file():
    _, diagnostics = check_sources([Source("a.agp", "agent x \"a\"\n"),
                                    Source("b.agp", "\n\nagent x \"b\"\n")])
    assert sorted(str(d.span) for d in diagnostics) == ["a.agp:1:7", "b.agp:3:7"]


def test_duplicate_with_the_standard_library():
    diagnostics = diagnose("import std.intents\nintent read\n")
    assert {d.span.source.name.endswith("intents.agp") for d in diagnostics} == {True, False}


def test_importing_a_module_twice_is_harmless():
    assert diagnose("import std.intents\nimport std.intents\ntool t { intent read }\n") == []


def test_a_syntax_error_does_not_hide_other_items():
    text = "dataclass a\npermit r when (\nagent x \"y\"\ntool t { data nope }\n"
    codes = sorted((d.code, d.span.line) for d in diagnose(text))
    assert codes == [("syntax", 2), ("unknown-class", 4)]


def test_unknown_tool_pattern_is_a_warning():
    diagnostics = diagnose("permit r on crm.nothing\n")
    assert [(d.code, d.severity.value, d.span.text) for d in diagnostics] == [
        ("unknown-tool", "warning", "crm.nothing")]


def test_pattern_matched_by_a_declaration_is_fine():
    # `crm.*` matches no declaration name literally but is matched by `crm.lookup`'s family.
    text = "tool crm.lookup { }\ntool http.* { }\npermit a on crm.*\npermit b on http.get\n"
    assert diagnose(text) == []

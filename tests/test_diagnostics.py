"""A catalogue of policy mistakes: each names its code, the exact underlined text and a hint.

The snapshots hold the full rendering (source line and caret) and were read one by one.
"""

import pytest

from agp.diagnostics import render_all
from agp.loader import check_sources
from agp.source import Source

DURATION_SYNTAX = "a duration is integer-and-unit pairs d, h, m, s in that order, without spaces"

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
    # Mistakes that say how to fix them (issue 16, item 20).
    "duration-with-a-unit-word": ("task t2 { ttl 30 minutes }\n", "syntax", "30 minutes",
                                  f"write `30m`: {DURATION_SYNTAX}"),
    "duration-with-a-space": ("task t2 { ttl 1h 30m }\n", "syntax", "1h 30m",
                              f"write `1h30m`: {DURATION_SYNTAX}"),
    "duration-in-a-condition": ("forbid f when task.age > 2 hours\n", "syntax", "2 hours",
                                f"write `2h`: {DURATION_SYNTAX}"),
    "misspelt-clause": ('permit r on crm.lookup wehn args.customer == "c"\n', "syntax", "wehn",
                        "did you mean `when`?"),
    "allow-for-permit": ("allow r on crm.lookup\n", "syntax", "allow", "did you mean `permit`?"),
    "deny-for-forbid": ("deny r on crm.lookup\n", "syntax", "deny", "did you mean `forbid`?"),
    "single-quotes": ("permit r on crm.lookup when args.customer == 'c-1'\n", "syntax", "'c-1'",
                      'write `"c-1"`'),
    "unterminated-single-quote": ("permit r on crm.lookup when args.customer == 'c-1\n",
                                  "syntax", "'", 'strings are written in double quotes: `"..."`'),
    "ampersands": ("forbid f when chain.depth > 2 && target.external\n", "syntax", "&&",
                   "write `and`"),
    "bars": ("forbid f when chain.depth > 2 || target.external\n", "syntax", "||", "write `or`"),
    "exclamation-mark": ("forbid f when !target.external\n", "syntax", "!", "write `not`"),
    "single-equals": ('forbid f when tool = "x"\n', "syntax", "=", "write `==`"),
    "missing-closing-brace": ("task t2 {\n  tools crm.*\npermit r on crm.lookup in t2\n",
                              "syntax", "", "close the `{` of line 7 with `}`"),
    "duration-out-of-range": ("permit r on crm.lookup ttl 36501d\n", "out-of-range", "36501d",
                              "durations are at most 36500d (about 100 years) either way"),
    "constant-out-of-range": ("forbid f when task.age > 30000d + 30000d\n", "out-of-range",
                              "30000d + 30000d",
                              "durations are at most 36500d (about 100 years) either way"),
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


# ---- one mistake, one error (issue 16, item 20) -------------------------------------------------


def test_a_missing_brace_does_not_hide_what_the_item_declares():
    text = ("task t2 {\n  tools crm.*\npermit r on crm.lookup in t2 when task is t2\n"
            "tool x.y { intent read  data piii\npermit s on x.y\n")
    found = [(d.code, d.span.text) for d in diagnose(HEADER + text)]
    # The tool with its block closed is still checked (`piii`); nothing else is reported.
    assert sorted(found) == [("syntax", ""), ("syntax", ""), ("unknown-class", "piii")]


def test_an_item_that_does_not_parse_hides_no_names():
    text = ("task t2 { tools crm.*  ttl 30 minutes }\ndataclass secret > \n"
            "intent mail, chat,\nagent helper spiffe\ntool \"mcp/send\" { intent mail\n"
            "  args { to string } }\n"
            "permit r on \"mcp/send\" in t2 by helper when task is t2 and agent is helper\n"
            "forbid f on intent chat when data >= secret and chat in intent\n")
    found = sorted((d.code, d.span.line) for d in diagnose(HEADER + text))
    assert found == [("syntax", 7), ("syntax", 8), ("syntax", 9), ("syntax", 10), ("syntax", 12)]


def test_words_after_a_complete_item_keep_the_item():
    from agp.syntax import parse

    # `allow r` is read as the end of the task `ticket` before it: the task is kept whole.
    text = HEADER + "allow r\n"
    assert [(d.code, d.span.text) for d in diagnose(text)] == [("syntax", "allow")]
    kept = parse(Source("p.agp", text)).items
    assert [type(i).__name__ for i in kept][-1] == "TaskDecl" and kept[-1].tools is not None


def test_an_operator_of_another_language_is_read_as_meant():
    # After the error, the rest of the condition is still checked, with the operator fixed.
    found = [(d.code, d.span.text) for d in diagnose(HEADER + "forbid f when !chian.depth\n")]
    assert found == [("syntax", "!"), ("unknown-name", "chian")]


# ---- reserved words as field names (LANGUAGE.md §1) ---------------------------------------------

FIELDS = """tool mail.send {
  intent write
  args { to: string, data: string, permit: bool, task?: string, in?: number }
}
task mailing { params { to: string, count: number, ttl: number }  tools mail.* }
permit send on mail.send in mailing
  when args.to == task.params.to and args.permit and task.params.count < 3
   and not (args has in) and task.params.ttl > 0
"""


def test_reserved_words_are_field_names_in_schemas_and_after_a_dot(tmp_path):
    import agp

    assert diagnose(HEADER + FIELDS) == []
    (tmp_path / "p.agp").write_text(HEADER + FIELDS)
    request = {
        "agent": {"id": "spiffe://acme/bot"}, "tool": "mail.send", "now": "2026-01-01T10:00:00Z",
        "args": {"to": "a@x", "data": "d", "permit": True},
        "task": {"kind": "mailing", "id": "m1", "params": {"to": "a@x", "count": 1, "ttl": 5}},
    }
    for compiled in (True, False):
        decision = agp.load(str(tmp_path / "p.agp"), compiled=compiled).decide(request)
        assert (decision.decision, decision.rules) == ("allow", ["send"])


def test_a_field_named_like_a_keyword_is_formatted_back_the_same():
    from agp.syntax.format import format_text

    assert format_text(HEADER + FIELDS) == format_text(format_text(HEADER + FIELDS))

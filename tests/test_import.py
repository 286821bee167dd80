"""`agp import otel` and `agp import mcp-tools` (the import commands), sentence by sentence."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from support import DATA

from agp.cli import main
from agp.integrations.mcp_tools import declarations, doc_line, json_type, pattern
from agp.loader import check_paths
from agp.source import Source
from agp.syntax.format import format_text
from agp.syntax.parser import parse

MCP = DATA / "mcp"


def run(*argv: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(argv), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# ---- otel ---------------------------------------------------------------------------------------


def attr(key: str, value: object) -> dict[str, object]:
    kind = {str: "stringValue", bool: "boolValue", int: "intValue"}[type(value)]
    return {"key": key, "value": {kind: value}}


def span(span_id: str, start: int, *, op: str | None = "execute_tool", tool: str = "crm.lookup",
         args: object = None, agent: str | None = None, conversation: str | None = None,
         parent: str = "", trace: str = "t1", **extra: object) -> dict[str, object]:
    attrs = []
    if op is not None:
        attrs.append(attr("gen_ai.operation.name", op))
    if op == "execute_tool":
        attrs.append(attr("gen_ai.tool.name", tool))
    if args is not None:
        attrs.append(attr("gen_ai.tool.call.arguments",
                          args if isinstance(args, str) else json.dumps(args)))
    if agent:
        attrs.append(attr("gen_ai.agent.id", agent))
    if conversation:
        attrs.append(attr("gen_ai.conversation.id", conversation))
    attrs += [attr(k, v) for k, v in extra.items()]
    return {"traceId": trace, "spanId": span_id, "parentSpanId": parent, "name": f"span {span_id}",
            "startTimeUnixNano": str(1764324000_000000000 + start * 1000), "attributes": attrs}


def otlp(*spans: dict[str, object]) -> dict[str, object]:
    return {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": list(spans)}]}]}


def events(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if not line.startswith("//")]


def test_otel_calls_tasks_delegations_in_time_order(tmp_path):
    bot, billing = "spiffe://acme.com/bot", "spiffe://acme.com/billing"
    doc = otlp(
        span("a", 0, op="invoke_agent", agent=bot),
        span("c2", 7, tool="payments.refund", args={"amount": 40}, conversation="conv-1",
             agent=billing, **{"gen_ai.tool.call.id": "call_9"}),
        span("c1", 5, args={"customer": "c-1"}, conversation="conv-1", parent="a"),
        span("c3", 7, args={}, conversation="conv-1", parent="a"),  # a tie: input order kept
        span("x", 9, op="chat"), span("y", 9, op=None),
        span("bad", 9, args="[1, 2]", agent=bot))
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(doc))
    code, out, err = run("import", "otel", str(path), "--task-kind", "support_ticket",
                         "--task-params", '{"customer": "c-1"}')
    assert code == 0
    assert events(out) == [
        {"ts": "2025-11-28T10:00:00.000005Z", "event": "task.start", "task": {
            "id": "conv-1", "kind": "support_ticket", "params": {"customer": "c-1"}},
         "agent": bot},
        {"ts": "2025-11-28T10:00:00.000005Z", "event": "call", "task": "conv-1", "agent": bot,
         "tool": "crm.lookup", "args": {"customer": "c-1"}},
        {"ts": "2025-11-28T10:00:00.000007Z", "event": "delegate", "task": "conv-1",
         "from": bot, "to": billing},
        {"ts": "2025-11-28T10:00:00.000007Z", "event": "call", "task": "conv-1",
         "agent": billing, "tool": "payments.refund", "args": {"amount": 40}},
        {"ts": "2025-11-28T10:00:00.000007Z", "event": "delegate", "task": "conv-1",
         "from": billing, "to": bot},
        {"ts": "2025-11-28T10:00:00.000007Z", "event": "call", "task": "conv-1", "agent": bot,
         "tool": "crm.lookup", "args": {}},
    ]
    assert "// span c2 of trace t1, tool call call_9" in out
    assert "3 call(s) in 1 task(s); skipped 3 span(s) of other operations and 1 malformed" in err


def test_otel_without_a_task_kind_groups_nothing_and_uses_the_agent_option(tmp_path):
    path = tmp_path / "spans.jsonl"  # one document per line, as the Collector writes them
    path.write_text(json.dumps(otlp(span("s1", 1, trace="t1"))) + "\n\n"
                    + json.dumps(otlp(span("s2", 0, trace="t2", args={"q": 1}))) + "\n")
    code, out, _ = run("import", "otel", str(path), "--agent", "spiffe://x/a")
    assert code == 0
    assert [(e["event"], e.get("task"), e["agent"], e["args"]) for e in events(out)] == [
        ("call", None, "spiffe://x/a", {"q": 1}), ("call", None, "spiffe://x/a", {})]


def test_otel_groups_by_trace_id_without_a_conversation(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(otlp(span("s1", 1, trace="t1", agent="spiffe://x/a"),
                                     span("s2", 2, trace="t2", agent="spiffe://x/a"))))
    code, out, _ = run("import", "otel", str(path), "--task-kind", "k")
    assert [(e["event"], e["task"]["id"] if e["event"] == "task.start" else e["task"])
            for e in events(out)] == [
        ("task.start", "t1"), ("call", "t1"), ("task.start", "t2"), ("call", "t2")]


def test_an_imported_trace_replays_to_the_expected_decisions(tmp_path):
    bot = "spiffe://test/agents/bot"
    path = tmp_path / "s.json"
    path.write_text(json.dumps(otlp(
        span("a", 0, op="invoke_agent", agent=bot, conversation="c1"),
        span("1", 1, tool="shop.lookup", args={"customer": "c-1"}, parent="a",
             conversation="c1"),
        span("2", 2, tool="shop.delete", args={"customer": "c-1"}, parent="a",
             conversation="c1"))))
    trace = tmp_path / "t.jsonl"
    assert run("import", "otel", str(path), "-o", str(trace), "--task-kind", "support",
               "--task-params", '{"customer": "c-1"}')[0] == 0
    code, out, _ = run("replay", "-p", str(MCP / "guard.agp"), str(trace))
    assert code == 0
    assert [json.loads(line)["decision"] for line in out.splitlines()] == ["allow", "deny"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "s.json:1:2: invalid JSON"),
    ('{"a": 1}\n{"resourceSpans": []}\n', "s.json:1: not OTLP JSON trace data"),
    ('{"resourceSpans": []}\n{oops\n', "s.json:2: invalid JSON"),
    ('{"resourceSpans": {}}', "resourceSpans is not a list"),
    ('[1]', "s.json: an OTLP JSON document is not a JSON object"),
])
def test_otel_input_that_is_not_otlp_exits_2_naming_the_place(tmp_path, content, message):
    (tmp_path / "s.json").write_text(content)
    code, _, err = run("import", "otel", str(tmp_path / "s.json"))
    assert code == 2 and message in err and "Traceback" not in err


def test_otel_a_call_without_an_agent_exits_2_naming_the_span(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps(otlp(span("s9", 1))))
    code, _, err = run("import", "otel", str(tmp_path / "s.json"))
    assert code == 2 and "span s9" in err and "--agent" in err


# ---- mcp-tools ----------------------------------------------------------------------------------

TOOLS = [
    {"name": "search", "description": "Find things.\r\nFast.\rAnd\u2028more\u2029end\x00\x1b[31m",
     "inputSchema": {"type": "object", "properties": {
         "q": {"type": "string"}, "n": {"type": "integer"}, "x": {"type": "number"},
         "on": {"type": "boolean"}, "tags": {"type": "array"}, "o": {"type": "object"},
         "opt": {"type": ["string", "null"]}, "mode": {"enum": ["a", "b"]},
         "level": {"enum": [1, 2.5]}, "mixed": {"enum": [1, "a"]}, "to": {}},
         "required": ["q", "n", "x", "on", "tags", "o", "mode", "level", "mixed", "to"]}},
    {"name": "github/create-issue", "inputSchema": {"type": "object"}},
    {"name": "in.box", "description": "permit all on * # not policy\n}",
     "inputSchema": {"type": "object", "properties": {"a-b": {"type": "string"}}}},
    {"name": "we\"ird\\name\u2028", "inputSchema": {"type": "object", "properties": {}}},
]


def test_mcp_tools_declarations_from_a_saved_result(tmp_path):
    text = declarations(TOOLS)
    assert "## Find things.\n## Fast.\n## And\n## more\n## end[31m\ntool search {" in text
    assert ("args { q: string, n: number, x: number, on: bool, tags: list, o: any, "
            "opt?: string, mode: string, level: number, mixed: any, to: any }") in " ".join(
        text.split())
    assert 'tool "github/create-issue" {  # to do: intents and data classes\n  args {}\n}' in text
    assert '## permit all on * # not policy\n## }\ntool "in.box" {}  # to do: intents and ' \
        'data classes; no args schema: property "a-b" is not an identifier' in text
    assert 'tool "we\\"ird\\\\name\\u2028" {' in text
    assert text.count("# to do: intents and data classes") == len(TOOLS)
    for page in ({"tools": TOOLS}, {"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS}},
                 [{"tools": TOOLS[:2]}, {"tools": TOOLS[2:], "nextCursor": None}]):
        (tmp_path / "tools.json").write_text(json.dumps(page))
        out = tmp_path / "tools.agp"
        code, _, err = run("import", "mcp-tools", "--from", str(tmp_path / "tools.json"),
                           "-o", str(out))
        assert code == 0 and "4 tool(s)" in err
        assert out.read_text() == text
    assert check_paths([str(out)])[0] is not None
    assert run("fmt", "--check", str(out))[0] == 0


def test_mcp_tools_from_a_live_server(tmp_path):
    out = tmp_path / "live.agp"
    proc = subprocess.run([sys.executable, "-m", "agp.cli", "import", "mcp-tools", "-o", str(out),
                           "--", sys.executable, str(MCP / "upstream.py")],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "## Look a customer up.\n## Returns their record.\ntool lookup {" in text
    assert "args { customer: string, amount: number }" in text


@pytest.mark.parametrize("argv, message", [
    (["--from", "missing.json"], "cannot read missing.json"),
    ([], "give either --from TOOLS.json or -- COMMAND"),
    (["--", "/no/such/server"], "cannot list the tools of /no/such/server"),
])
def test_mcp_tools_bad_input_exits_2(argv, message):
    code, _, err = run("import", "mcp-tools", *argv)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("content, message", [
    ("[", "invalid JSON"), ('{"tool": []}', 'an object with a "tools" list'),
    ('{"tools": [{"description": "x"}]}', "tools[0] is not a tool with a name"),
    ('{"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "no"}}', "answered an error"),
    ('{"tools": [{"name": "a"}, {"name": "a"}]}', "tool 'a' is listed twice"),
])
def test_mcp_tools_malformed_results_exit_2(tmp_path, content, message):
    (tmp_path / "t.json").write_text(content)
    code, _, err = run("import", "mcp-tools", "--from", str(tmp_path / "t.json"))
    assert code == 2 and message in err


def test_json_types():
    assert [json_type(s) for s in ({"type": ["integer", "null"]}, {"type": ["null"]},
                                   {"type": ["string", "number"]}, {"enum": [True]}, {},
                                   {"type": "null"}, "x")] == \
        ["number", "any", "any", "any", "any", "any", "any"]
    assert pattern("a.b_c.D9") == "a.b_c.D9"
    assert pattern("tool.x") == '"tool.x"' and pattern("x.tool") == '"x.tool"'
    assert pattern("a..b") == '"a..b"' and pattern("9a") == '"9a"'


_text = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_text.filter(bool), _text,
                          st.dictionaries(_text, st.sampled_from(
                              [{"type": "string"}, {"type": "number"}, {}, {"enum": ["a"]}]),
                              max_size=3)),
                max_size=4, unique_by=lambda t: t[0]))
def test_any_tools_list_gives_canonical_policy_text_that_checks(tools):
    """Whatever the names and descriptions hold, the output parses, checks, is canonical, and
    declares exactly the listed tools: no description can become policy text."""
    text = declarations([{"name": n, "description": d,
                          "inputSchema": {"type": "object", "properties": p}}
                         for n, d, p in tools])
    assert format_text(text) == text
    parsed = parse(Source("t.agp", text))
    assert not [d for d in parsed.diagnostics if d.is_error]
    assert [item.pattern.text for item in parsed.items] == [n for n, _, _ in tools]
    assert [item.doc for item in parsed.items] == [
        "\n".join(doc_line(line)[3:] for line in d.splitlines()) if d.strip() else None
        for _, d, _ in tools]


@pytest.mark.parametrize("field", ["true", "false"])
def test_a_property_named_like_a_literal_gets_no_args_schema(field):
    text = declarations([{"name": "t", "inputSchema": {"properties": {field: {}}}}])
    assert f'no args schema: property "{field}" is not an identifier' in text
    assert format_text(text) == text

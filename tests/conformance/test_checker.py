"""`agp check`: exit codes and `file:line:col` diagnostics for what LANGUAGE.md says is provable."""

from __future__ import annotations

import textwrap
from unittest import mock

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from support import diagnostics, position

import agp
from agp.check import resolve
from agp.cli import main
from agp.glob import Glob
from agp.loader import check_sources
from agp.source import Source

PRE = """\
import std.intents
dataclass public
dataclass pii > public
agent bot "spiffe://t/bot"
tool crm.lookup { intent read  data pii  args { customer: string } }
tool payments.refund {
  intent write, payment
  args { amount: number, customer: string, note?: string }
}
tool http.* { intent egress }
task ticket { tools crm.* }
"""


@pytest.fixture
def check(tmp_path, monkeypatch):
    """Write files into a fresh directory and run `agp check` on them from there."""
    monkeypatch.chdir(tmp_path)

    def run(files: dict[str, str], paths=None):
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        result = CliRunner().invoke(main, ["check", *(paths or list(files))])
        return result.exit_code, result.output, diagnostics(result.output)

    return run


def errors_of(diags):
    return [d for d in diags if d["sev"] == "error"]


def warnings_of(diags):
    return [d for d in diags if d["sev"] == "warning"]


def assert_error_at(diags, output, file, line, cols):
    cols = {cols} if isinstance(cols, int) else set(cols)
    hits = [d for d in errors_of(diags) if d["file"] == file and d["line"] == line]
    assert hits, f"no error on {file}:{line}\n{output}"
    assert any(d["col"] in cols for d in hits), f"expected column in {cols}\n{output}"


# --- Clean sets ---

def test_clean_exit_zero(check):
    code, out, diags = check({"p.agp": PRE + "permit r on crm.lookup when args.customer == \"c\"\n"})
    assert code == 0, out
    assert errors_of(diags) == [] and "error[" not in out


VALID_SYNTAX = """\
module acme.support

# a comment
import std.intents
import std.intents                      # importing twice is harmless

## Doc comment for public.
## Two lines.
dataclass public
dataclass internal > public
dataclass confidential > internal
dataclass pii > internal
dataclass restricted > confidential, pii
dataclass unused_class                  # unused declarations are not reported

agent bot "spiffe://t/bot"
agent fam "spiffe://t/fam/*"
agent unused_agent "spiffe://t/unused"

tool crm.lookup { intents read data pii args { customer: string } }
tool payments.refund {
  intent write, payment
  args { amount: number, customer: string, note?: string, when_: duration, flags: list,
         ok: bool }
}
tool http.* { intent egress }
tool "github/create-issue" { intent write }
tool "permit.thing" { intent read }
tool files.*.read { intent read }

task t1 {
  params { customer: string, n?: number }
  tools crm.*, payments.refund, "github/create-issue", http.get
  intent read, write, payment, egress
  data <= pii
  ttl 1h30m
  delegate { to fam depth <= 3 }
}
task t2 { delegate { depth <= 2 } }
task t3 { delegate { to bot, fam } }
task unused_task { }

defaults { ttl 10m max_ttl 1d }

permit one_line on crm.lookup in t1 by bot when args.customer == task.params.customer ttl 5m because "x"
permit
  spread
  on
  payments.refund
  when
  args.amount > -1 and args.amount <= 0.5 and args.note == "n"
ask on_intents on intent egress, intent payment when not (target.external == false)
forbid reserved_after_dot when args.data == 1 or chain.depth > 2 or context.in == "x"
permit string_tool on "github/create-issue", "permit.thing"
permit files on files.docs.read
permit quantifiers when any(h in chain.hops: h.kind == "human") and all(x in [1, 2]: x > 0)
permit functions when lower(tool) == "x" or upper("a") == "A" or len(args) > 0
  or startswith(tool, "a") or endswith(tool, "b") or contains(tool, "c")
  or hour(now) > 8 or weekday(now) < 5
permit lattice when data <= pii and pii <= restricted and public in data and not (data >= restricted)
permit names when agent is bot and task is t1 and bot in chain and agent.id matches "spiffe://*"
  and task.age < 1h and args has amount and target has host
permit ttl_arith when task.age + 5m < 1h - 10m
"""


def test_valid_syntax_checks_clean(check):
    code, out, diags = check({"p.agp": VALID_SYNTAX})
    assert code == 0, out
    assert errors_of(diags) == [], out
    assert warnings_of(diags) == [], out


def test_valid_syntax_loads():
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp())
    (d / "p.agp").write_text(VALID_SYNTAX)
    engine = agp.load(str(d / "p.agp"))
    got = engine.decide({"agent": {"id": "spiffe://t/x"}, "tool": "github/create-issue",
                         "args": {"data": 0}, "context": {"in": "y"},
                         "now": "2026-11-28T10:00:00Z"})
    assert got.decision == "allow", (got.rules, got.errors)
    assert "string_tool" in got.rules


def test_any_type_in_args_schema(check):
    # LANGUAGE.md §2: "types: `string`, `number`, `bool`, `duration`, `list`, `any`".
    code, out, diags = check({"p.agp": "tool x.y { args { a: any, b?: any } }\n"
                                       "permit r on x.y when args.a == 1\n"})
    assert code == 0, out
    assert diags == [], out


# --- Unknown names, classes, intents, agents, tasks ---

UNKNOWN = [
    ("permit r when foo == 1", "foo"),
    ("permit r when data <= secrett", "secrett"),
    ("forbid r when secrett in data", "secrett"),
    ("permit r when pii <= secrett", "secrett"),
    ("permit r on intent teleport", "teleport"),
    ("permit r when teleport in intent", "teleport"),
    ("permit r by nobody", "nobody"),
    ("permit r by bot, nobody", "nobody"),
    ("permit r when agent is nobody", "nobody"),
    ("permit r when nobody in chain", "nobody"),
    ("permit r in nosuchtask", "nosuchtask"),
    ("permit r when task is nosuchtask", "nosuchtask"),
    ('permit r when lowercase("A") == "a"', "lowercase"),
    ("permit r when any(x in [1]: y > 0)", "y"),
    ("dataclass top > nothing", "nothing"),
    ("tool x.y { intent teleport }", "teleport"),
    ("tool x.y { intent read  data secrett }", "secrett"),
    ("task t2 { intents teleport }", "teleport"),
    ("task t2 { data <= secrett }", "secrett"),
    ("task t2 { delegate { to nobody } }", "nobody"),
]


@pytest.mark.parametrize("line, needle", UNKNOWN, ids=[u[0] for u in UNKNOWN])
def test_unknown_reported_at_position(check, line, needle):
    text = PRE + line + "\n"
    code, out, diags = check({"p.agp": text})
    assert code == 1, out
    _, col = position(line, needle)
    assert_error_at(diags, out, "p.agp", text.count("\n"), col)


def test_unknown_on_later_line_of_multiline_rule(check):
    text = PRE + "\npermit r\n  on crm.lookup\n  when args.customer == \"x\"\n    and data <= secrett\n"
    code, out, diags = check({"p.agp": text})
    assert code == 1
    assert_error_at(diags, out, "p.agp", *position(text, "secrett"))


# --- Duplicates point at both places ---

DUPLICATES = [
    ("dataclass pii > public", "pii"),
    ('agent bot "spiffe://t/other"', "bot"),
    ("task ticket { }", "ticket"),
    ('agent pii "spiffe://t/pii"', "pii"),
    ("dataclass ticket", "ticket"),
]


@pytest.mark.parametrize("line, name", DUPLICATES, ids=[d[0] for d in DUPLICATES])
def test_duplicate_declaration_points_at_both(check, line, name):
    text = PRE + line + "\n"
    code, out, diags = check({"p.agp": text})
    assert code == 1, out
    first = position(text, name, 1)[0]
    second = text.count("\n")
    assert errors_of(diags), out
    assert f"p.agp:{first}:" in out, out
    assert f"p.agp:{second}:" in out, out


def test_duplicate_rule_name(check):
    text = PRE + "permit r when true\nforbid r when false\n"
    code, out, diags = check({"p.agp": text})
    assert code == 1, out
    n = text.count("\n")
    assert f"p.agp:{n - 1}:" in out and f"p.agp:{n}:" in out, out


def test_duplicate_across_files(check):
    code, out, diags = check(
        {"set/a.agp": "dataclass shared\n", "set/b.agp": "dataclass public\ndataclass shared\n"},
        paths=["set"],
    )
    assert code == 1, out
    assert "a.agp:1:" in out and "b.agp:2:" in out, out


def test_duplicate_with_standard_library(check):
    text = "import std.intents\nintent read\n"
    code, out, diags = check({"p.agp": text})
    assert code == 1, out
    assert any(d["file"] == "p.agp" and d["line"] == 2 for d in errors_of(diags)), out


def test_own_intents_without_import(check):
    code, out, _ = check({"p.agp": "intent read, write\npermit r on intent read\n"})
    assert code == 0, out


def test_std_intents_declares_the_usual(check):
    names = ["read", "write", "delete", "execute", "egress", "payment", "credential", "spawn",
             "admin"]
    text = "import std.intents\n" + "".join(f"permit r_{n} on intent {n}\n" for n in names)
    code, out, _ = check({"p.agp": text})
    assert code == 0, out


# --- Data-class cycles ---

@pytest.mark.parametrize(
    "text",
    ["dataclass a > b\ndataclass b > a\n", "dataclass a > a\n",
     "dataclass a > c\ndataclass b > a\ndataclass c > b\n"],
    ids=["two", "self", "three"],
)
def test_dataclass_cycle(check, text):
    code, out, diags = check({"p.agp": text})
    assert code == 1, out
    assert errors_of(diags), out
    assert all(d["line"] <= text.count("\n") for d in errors_of(diags))


# --- Type mismatches ---

MISMATCHES = [
    ('permit r on payments.refund when args.amount < "x"', 'args.amount < "x"'),
    ("permit r when 5m > 3", "5m > 3"),
    ('permit r when "a" + 1 == 2', '"a" + 1 == 2'),
    ('permit r when lower(5) == "a"', 'lower(5) == "a"'),
    ('permit r when len("x")', 'len("x")'),
    ("permit r when not 5", "not 5"),
    ("permit r when 1 and true", "1 and true"),
    ("permit r on payments.refund when args.customer + 1 == 2", "args.customer + 1 == 2"),
    ('permit r when startswith(tool, 1)', "startswith(tool, 1)"),
    ("permit r when pii <= 5", "pii <= 5"),
    ('permit r when chain.depth > "x"', 'chain.depth > "x"'),
    ("permit r when tool > 1", "tool > 1"),
    ("permit r when now > 5m", "now > 5m"),
    ("permit r on payments.refund when args.amount + 1m > 2", "args.amount + 1m > 2"),
    ("permit r when task.age > 5", "task.age > 5"),
    ("permit r when hour(5) == 1", "hour(5) == 1"),
    ('permit r when lower("a", "b") == "a"', 'lower("a", "b") == "a"'),
    ("permit r when read in data", "read in data"),
    ("permit r when public in intent", "public in intent"),
    ("permit r when read <= public", "read <= public"),
    ("permit r when any(x in 5: true)", "any(x in 5: true)"),
    # count, sum and filters: a non-boolean COND or count body, sum of what is not a number or
    # a duration, and the types of the results (count: number; sum: its body's)
    ("permit r when any(x in [1] if 2: true)", "2"),
    ("permit r when all(x in [1] if x: true)", "x: true"),
    ("permit r when count(x in [1]: 2) > 0", "2"),
    ('permit r when sum(x in [1]: "a") > 0', '"a"'),
    ("permit r when sum(x in [1]: x > 0) > 0", "x > 0"),
    ('permit r when count(x in [1]: true) > "a"', 'count(x in [1]: true) > "a"'),
    ("permit r when count(x in [1]: true)", "count(x in [1]: true)"),
    ("permit r when sum(x in [1]: 1m) > 1", "sum(x in [1]: 1m) > 1"),
    ("permit r when sum(x in [1]: x) > 1m", "sum(x in [1]: x) > 1m"),
    ("permit r when count(x in 5: true) > 0", "count(x in 5: true)"),
    ('permit r when -"a" == 1', '-"a" == 1'),
]


@pytest.mark.parametrize("line, expr", MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_type_mismatch(check, line, expr):
    text = PRE + line + "\n"
    code, out, diags = check({"p.agp": text})
    assert code == 1, out
    row = text.count("\n")
    start = line.index(expr) + 1
    hits = [d for d in errors_of(diags) if d["line"] == row]
    assert hits, out
    assert any(start <= d["col"] <= start + len(expr) for d in hits), out


def test_count_sum_and_filters_check_clean(check):
    """Well-typed count, sum and filters; `count`, `sum` and `if` are names after `.` and as
    schema fields."""
    text = PRE + """tool calc { args { count: number, sum: number, if?: string, l: list } }
permit q on calc when count(x in args.l if x > 0: x < 10) >= args.count
  and sum(x in args.l if x > 0: x) <= args.sum and sum(x in args.l: 1m) < 1h
  and any(x in args.l if args has if: x == args.if) or all(x in args.l if true: true)
"""
    code, out, diags = check({"p.agp": text})
    assert code == 0, out
    assert errors_of(diags) == [] and warnings_of(diags) == [], out


# --- args fields and the tools' schemas ---

def test_args_field_absent_from_schema(check):
    text = PRE + "permit r on crm.lookup when args.amount > 1\n"
    code, out, diags = check({"p.agp": text})
    assert code == 1, out
    row, col = position(text, "args.amount")
    assert_error_at(diags, out, "p.agp", row, (col, col + len("args.")))


def test_args_field_absent_second_reference(check):
    text = PRE + "permit r on payments.refund when args.amount > 1 and args.nonexistent == 2\n"
    code, out, diags = check({"p.agp": text})
    assert code == 1, out
    row, col = position(text, "args.nonexistent")
    assert_error_at(diags, out, "p.agp", row, (col, col + len("args.")))


@pytest.mark.parametrize(
    "line",
    [
        'permit r on crm.lookup, payments.refund when args.customer == "x"',
        'permit r on payments.refund when args.note == "x"',
        "permit r on crm.lookup, http.get when args.amount > 1",
        "permit r on http.get when args.anything == 1",
        "permit r when args.anything == 1",
    ],
    ids=["in-both", "optional", "one-without-schema", "no-schema", "unscoped"],
)
def test_args_field_fine(check, line):
    code, out, diags = check({"p.agp": PRE + line + "\n"})
    assert code == 0, out
    assert errors_of(diags) == []


# --- Tool patterns matching no declaration are warnings ---

@pytest.mark.parametrize(
    "line, needle",
    [
        ("permit r on nothing.here", "nothing.here"),
        ("permit r on crm.lookup, nothing.*", "nothing.*"),
        ("task t2 { tools nothing.* }", "nothing.*"),
    ],
)
def test_unmatched_tool_pattern_warns(check, line, needle):
    text = PRE + line + "\n"
    code, out, diags = check({"p.agp": text})
    assert code == 0, out
    assert errors_of(diags) == [], out
    row = text.count("\n")
    hits = [d for d in warnings_of(diags) if d["line"] == row]
    assert hits, out
    assert any(d["col"] == line.index(needle) + 1 for d in hits), out


@pytest.mark.parametrize(
    "line",
    ["permit r on crm.*", "permit r on http.get", "permit r on *", "task t2 { tools http.get.x }",
     'permit r on "crm.look?p"'],
    ids=["matches-declaration", "matched-by-declaration", "star", "deeper-than-family",
         "question-mark"],
)
def test_matching_tool_pattern_no_warning(check, line):
    code, out, diags = check({"p.agp": PRE + line + "\n"})
    assert code == 0, out
    assert diags == [], out


# --- Durations ---

@pytest.mark.parametrize(
    "line, needle",
    [
        ("permit r ttl 10min", "10min"),
        ("permit r ttl 30m1h", "30m1h"),
        ("permit r ttl 1m1m", "1m1m"),
        ("permit r ttl 5", "5"),
        ("permit r when task.age > 10min", "10min"),
        ("permit r ttl 5m_", "5m_"),
        ("task t2 { ttl 2h5 }", "2h5"),
        ("defaults { ttl 1w }", "1w"),
    ],
)
def test_bad_duration_is_an_error(check, line, needle):
    text = PRE + line + "\n"
    code, out, diags = check({"p.agp": text})
    assert code == 1, out
    row = text.count("\n")
    assert any(d["line"] == row for d in errors_of(diags)), out


@pytest.mark.parametrize("duration", ["30s", "5m", "2h", "1d", "1h30m", "1d2h3m4s", "0s"])
def test_good_duration(check, duration):
    code, out, _ = check({"p.agp": f"permit r ttl {duration}\n"})
    assert code == 0, out


# --- Syntax errors do not hide the other items' errors ---

def test_syntax_error_does_not_hide_others(check):
    text = textwrap.dedent("""\
        dataclass public
        permit broken when (1 ==
        dataclass pii > secrett
        permit r2 by nobody
        tool x.y { intent read data
        agent a "spiffe://t/a"
        permit r3 by a, nobody2
        """)
    code, out, diags = check({"p.agp": text})
    assert code == 1, out
    lines = {d["line"] for d in errors_of(diags)}
    assert 2 in lines or 3 in lines, out          # the broken rule (reported where parsing failed)
    assert_error_at(diags, out, "p.agp", *position(text, "secrett"))
    assert_error_at(diags, out, "p.agp", *position(text, "nobody"))
    assert_error_at(diags, out, "p.agp", *position(text, "nobody2"))


def test_syntax_error_in_one_file_does_not_hide_another(check):
    code, out, diags = check(
        {"set/a.agp": "permit broken when when\n", "set/b.agp": "permit r by nobody\n"},
        paths=["set"],
    )
    assert code == 1, out
    files = {d["file"] for d in errors_of(diags)}
    assert files == {"a.agp", "b.agp"}, out
    assert_error_at(diags, out, "b.agp", 1, 13)


@pytest.mark.parametrize(
    "line",
    [
        "permit r when 1 < 2 < 3",
        "permit r when 1 == 1 == true",
        "permit r when tool matches \"a\" matches \"b\"",
        "permit when true",
        "permit r on",
        "dataclass",
        "permit r when",
        "permit r when (true",
        "permit r ttl",
        "permit r because",
        "permit r because \"x\" when true",        # clauses come in the documented order
        "permit r ttl 5m when true",
        "permit r when true when true",
        "dataclass when",
        'agent bot2 spiffe',
        "tool { intent read }",
    ],
)
def test_syntax_errors_exit_one(check, line):
    text = PRE + line + "\n"
    code, out, diags = check({"p.agp": text})
    assert code == 1, out
    assert errors_of(diags), out
    assert all(d["line"] >= PRE.count("\n") for d in errors_of(diags)), out


def test_several_files_one_bad(check):
    code, out, diags = check({"good.agp": PRE, "bad.agp": "permit r by nobody\n"})
    assert code == 1, out
    assert {d["file"] for d in errors_of(diags)} == {"bad.agp"}


def test_diagnostic_headline_format(check):
    code, out, diags = check({"p.agp": "dataclass public\npermit r when data <= secrett\n"})
    assert code == 1
    assert len(errors_of(diags)) == 1, out
    d = errors_of(diags)[0]
    assert (d["line"], d["col"]) == (2, 23)
    assert "p.agp:2:23: error[" in out


# --- The same diagnostics from the Python API ---

def test_load_raises_policy_error_with_diagnostics(tmp_path):
    path = tmp_path / "p.agp"
    path.write_text("dataclass public\npermit r when data <= secrett\npermit s by nobody\n")
    with pytest.raises(agp.PolicyError) as info:
        agp.load(str(path))
    diags = list(info.value.diagnostics)
    assert len(diags) >= 2
    assert {d.span.line for d in diags} >= {2, 3}


def test_load_accepts_warnings(tmp_path):
    path = tmp_path / "p.agp"
    path.write_text("permit r on nothing.here\n")
    engine = agp.load(str(path))
    d = engine.decide({"agent": {"id": "a"}, "tool": "nothing.here", "now": "2026-11-28T10:00:00Z"})
    assert (d.decision, list(d.rules)) == ("allow", ["r"])


def test_load_list_of_paths(tmp_path):
    (tmp_path / "a.agp").write_text("agent bot \"spiffe://t/bot\"\n")
    (tmp_path / "b.agp").write_text("permit r by bot\n")
    engine = agp.load([str(tmp_path / "a.agp"), str(tmp_path / "b.agp")])
    d = engine.decide({"agent": {"id": "spiffe://t/bot"}, "tool": "x", "now": "2026-11-28T10:00:00Z"})
    assert list(d.rules) == ["r"]


def test_load_directory_recursive(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "a.agp").write_text("agent bot \"spiffe://t/bot\"\n")
    (tmp_path / "sub" / "deeper" / "b.agp").write_text("permit r by bot\n")
    (tmp_path / "sub" / "notes.txt").write_text("not a policy {{{")
    engine = agp.load(str(tmp_path))
    d = engine.decide({"agent": {"id": "spiffe://t/bot"}, "tool": "x", "now": "2026-11-28T10:00:00Z"})
    assert list(d.rules) == ["r"]


# --- Keywords are whole words, never after a `.` ---

def test_names_starting_with_keywords(check):
    text = textwrap.dedent("""\
        import std.intents
        dataclass informal
        dataclass notable > informal
        dataclass order > notable
        agent android "spiffe://t/android"
        agent island "spiffe://t/#island"
        task hasty { }
        tool store.data { intent read }
        tool ask_me.in.when { intent read }
        permit permitted on store.data, ask_me.in.when in hasty by android, island
          when data <= order and informal in data and args.in == 1 and context.not == 2
        """)
    code, out, diags = check({"p.agp": text})
    assert code == 0, out
    assert diags == [], out


@pytest.mark.parametrize(
    "line",
    ["dataclass when", "dataclass permit", "agent by \"x\"", "task in { }", "intent matches",
     "dataclass depth", "agent to \"x\"", "dataclass max_ttl", "task params { }"],
)
def test_reserved_words_are_not_names(check, line):
    code, out, diags = check({"p.agp": line + "\n"})
    assert code == 1, out
    assert errors_of(diags), out


def test_hash_inside_string_is_not_a_comment():
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp())
    (d / "p.agp").write_text('agent x "spiffe://t/#1"   # comment\npermit r by x when tool == "a#b"\n')
    engine = agp.load(str(d / "p.agp"))
    got = engine.decide({"agent": {"id": "spiffe://t/#1"}, "tool": "a#b",
                         "now": "2026-11-28T10:00:00Z"})
    assert (got.decision, list(got.rules)) == ("allow", ["r"])


# --- Literals outside the value bounds (issue 16, items 6, 7 and 8) ---

E308 = "1" + "0" * 308  # 1e308, a valid number: twice it is not
OUT_OF_BOUNDS = {
    # name: (policy after PRE, the underlined literal or expression)
    "int-of-5000-digits": ("forbid f when chain.depth > " + "9" * 5000, "9" * 5000),
    "int-of-4301-digits-in-a-list": ("forbid f when chain.depth in [1, " + "7" * 4301 + "]",
                                     "7" * 4301),
    "int-above-float64": ("forbid f when chain.depth > 2" + "0" * 308, "2" + "0" * 308),
    "decimal-of-309-digits": ("forbid f when chain.depth > " + "9" * 309 + ".5",
                              "9" * 309 + ".5"),
    "number-sum": (f"forbid f when chain.depth < {E308} + {E308}", f"{E308} + {E308}"),
    "number-difference": (f"forbid f when chain.depth < -{E308} - {E308}",
                          f"-{E308} - {E308}"),
    "duration-literal": ("forbid f when task.age < 999999999d + 1d", "999999999d"),
    "duration-sum": ("forbid f when task.age < 20000d + 20000d", "20000d + 20000d"),
    "duration-beyond-python": ("forbid f when task.age < 99999999999999999999d",
                               "99999999999999999999d"),
    "duration-of-5000-digits": ("forbid f when task.age < " + "9" * 5000 + "s",
                                "9" * 5000 + "s"),
    "task-ttl": ("task t9 { ttl 999999999d }", "999999999d"),
    "rule-ttl": ("permit r on crm.lookup ttl 36501d", "36501d"),
    "defaults": ("defaults { ttl 15m  max_ttl 40000d }", "40000d"),
    "delegation-depth": ("task t9 { delegate { depth <= " + "9" * 400 + " } }", "9" * 400),
}


def run_cli(*args):
    """`agp ARGS`: (exit code, output); a Python exception fails the test."""
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.mark.parametrize("case", sorted(OUT_OF_BOUNDS))
def test_a_value_out_of_bounds_is_a_checker_error(case, tmp_path):
    body, underlined = OUT_OF_BOUNDS[case]
    text = PRE + body + "\n"
    (tmp_path / "p.agp").write_text(text)
    code, out = run_cli("check", str(tmp_path / "p.agp"))
    assert code == 1, out
    (d,) = [d for d in diagnostics(out) if d["code"] == "out-of-range"]
    offset = text.index(underlined, len(PRE))
    assert (d["line"], d["col"]) == (text.count("\n", 0, offset) + 1,
                                     offset - text.rfind("\n", 0, offset))
    with pytest.raises(agp.PolicyError) as info:
        agp.load(str(tmp_path / "p.agp"))
    (error,) = [e for e in info.value.diagnostics if e.code == "out-of-range"]
    assert error.span.text == underlined


@pytest.mark.parametrize("case", ["int-of-5000-digits", "decimal-of-309-digits", "duration-sum",
                                  "task-ttl"])
def test_no_command_prints_a_traceback_for_a_literal_out_of_bounds(case, tmp_path):
    text = PRE + OUT_OF_BOUNDS[case][0] + "\n"
    policy = tmp_path / "p.agp"
    policy.write_text(text)
    request = tmp_path / "r.json"
    request.write_text('{"agent": {"id": "spiffe://t/bot"}, "tool": "crm.lookup", '
                       '"now": "2026-01-01T00:00:00Z"}')
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"request": ' + request.read_text() + "}\n")
    assert run_cli("fmt", "--check", str(policy))[0] in (0, 1)
    assert run_cli("eval", "-p", str(policy), str(request))[0] == 1
    assert run_cli("compile", "-p", str(policy), "-o", str(tmp_path / "b.agpb"))[0] == 1
    assert run_cli("diff", "-p", str(policy), "-p", str(policy), str(trace))[0] == 2


# --- Tool patterns against many declarations (issue 16, item 13) ---
#
# A tool pattern in a rule or task is related to a declaration when either, read as a plain
# name, matches the other. The checker finds them through an index (agp.glob.PatternSet); these
# tests hold it to the plain scan, which tried every declaration for every pattern.


def plain_related_tools(checker, text):
    """The declarations related to `text`, by trying each: exact ones first, then the others,
    each in policy order (the order in which the args schemas are united)."""
    query = Glob(text)
    decls = list(checker.tools.values())
    ordered = ([d for d in decls if Glob(d.pattern.text).is_exact]
               + [d for d in decls if not Glob(d.pattern.text).is_exact])
    return [d for d in ordered if query.relates(Glob(d.pattern.text))]


TOOL_PATTERN = st.text("ab.*?", min_size=1, max_size=5)
ARGS = st.sampled_from([None, "x: number", "x: string", "x: number, y: string", "y: number"])
CONDITION = st.sampled_from(["", " when args.x > 1", ' when args.y == "s"', " when args has z",
                             " when args.x == args.y"])


@st.composite
def tool_policies(draw):
    lines = ["intent call"]
    for pattern, args in draw(st.lists(st.tuples(TOOL_PATTERN, ARGS), max_size=10)):
        lines.append(f'tool "{pattern}" {{ intent call' + (f"  args {{ {args} }}" if args else "")
                     + " }")
    for j, (patterns, condition) in enumerate(draw(st.lists(
            st.tuples(st.lists(TOOL_PATTERN, min_size=1, max_size=3), CONDITION), max_size=8))):
        lines.append(f"permit r{j} on " + ", ".join(f'"{p}"' for p in patterns) + condition)
    for k, patterns in enumerate(draw(st.lists(st.lists(TOOL_PATTERN, min_size=1, max_size=3),
                                               max_size=3))):
        lines.append(f"task t{k} {{ tools " + ", ".join(f'"{p}"' for p in patterns) + " }")
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None)
@given(tool_policies())
def test_indexed_tool_patterns_give_the_diagnostics_of_the_plain_scan(text):
    source = Source("p.agp", text)
    indexed = resolve._Checker.related_tools
    asked = []

    def compared(checker, pattern):
        found = indexed(checker, pattern)
        asked.append(pattern)
        assert found == plain_related_tools(checker, pattern), pattern
        return found

    with mock.patch.object(resolve._Checker, "related_tools", compared):
        policy, diags = check_sources([source])
    with mock.patch.object(resolve._Checker, "related_tools", plain_related_tools):
        plain_policy, plain_diags = check_sources([source])
    assert diags == plain_diags
    assert (policy is None) == (plain_policy is None)
    assert asked or "permit" not in text and "task" not in text


def test_many_tools_and_glob_rules_check_without_trying_every_pair(monkeypatch):
    # The issue's shape, smaller: exact names, glob rules naming a few of them each, families
    # matched by exact rule patterns, and families against glob patterns. A plain scan tries
    # every pattern against every declaration: 1,200 x 600 matches.
    n = 300
    tools = ([f"tool s{i % 7}.op{i} {{ intent call  args {{ x: number }} }}" for i in range(n)]
             + [f"tool g{i % 7}.op{i}.* {{ intent call }}" for i in range(n)])
    rules = ([f'forbid f{j} on "s{j % 7}.op{j}*" when args.x == {j}' for j in range(n)]
             + [f'forbid e{j} on "*.op{j}"' for j in range(n)]
             + [f"forbid h{j} on g{j % 7}.op{j}.x" for j in range(n)]
             + [f'forbid k{j} on "g{j % 7}.op{j}*"' for j in range(n)]
             + ["permit p on nothing.*"])
    text = "intent call\n" + "\n".join(tools + rules) + "\n"
    tried = []
    match = Glob.match
    monkeypatch.setattr(Glob, "match", lambda g, s: tried.append(1) or match(g, s))
    policy, diags = check_sources([Source("p.agp", text)])
    monkeypatch.undo()
    assert policy is not None, diags
    assert len(tried) < 5 * (len(tools) + len(rules))
    (warned,) = diags
    assert warned.code == "unknown-tool" and warned.span.text == "nothing.*"


def test_only_the_first_unmatched_tool_patterns_get_a_hint(monkeypatch):
    # Each hint compares the pattern with every declaration, so thousands of unmatched patterns
    # against thousands of tools would be N x M: past MAX_TOOL_HINTS the warning stands alone.
    monkeypatch.setattr(resolve, "MAX_TOOL_HINTS", 3)
    tools = [f"tool svc.op{i} {{ intent call }}" for i in range(5)]
    rules = [f"forbid f{j} on svc.opx{j}" for j in range(5)]
    policy, diags = check_sources([Source("p.agp", "intent call\n" + "\n".join(tools + rules))])
    assert policy is not None
    assert [d.code for d in diags] == ["unknown-tool"] * 5
    assert [d.hint is not None for d in diags] == [True, True, True, False, False]

"""`agp fmt`: canonical, idempotent, keeps comments, never changes a decision."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import ROOT, SPEC

from agp.cli import main
from agp.source import Source
from agp.syntax import parse
from agp.syntax.format import FormatError, format_text, shape

# The TextMate grammar's scope tests: their `#` lines point at columns of the line above, and
# some are unfinished on purpose (they test highlighting while typing). Not policies.
NOT_POLICIES = frozenset(
    p.relative_to(ROOT) for p in (ROOT / "editors" / "vscode" / "tests").glob("*.test.agp")) | {
    # LANGUAGE.md §6's examples, copied verbatim (tests/test_packaging.py holds them equal): the
    # spec breaks one condition over two lines, which `agp fmt` joins.
    Path("tests/data/sessions/sessions.agp")}


def _repository_files(suffix: str) -> list[Path]:
    """Every file of the repository with this suffix, outside dependencies and tool folders."""
    found = []
    for path in ROOT.rglob(f"*{suffix}"):
        parts = path.relative_to(ROOT).parts
        if not any(p.startswith(".") or p in ("node_modules", "build", "dist") or
                   p.endswith(".egg-info") for p in parts[:-1]):
            found.append(path)
    return sorted(found)


POLICIES = [p for p in _repository_files(".agp") if p.relative_to(ROOT) not in NOT_POLICIES]
FENCE = re.compile(r"^```agp[ \t]*\n(.*?)^```", re.S | re.M)
# Every agp code block of the documentation: (file, line of its fence, text).
DOC_POLICIES = [(md, md.read_text(encoding="utf-8")[: m.start()].count("\n") + 1, m.group(1))
                for md in _repository_files(".md") for m in FENCE.finditer(md.read_text("utf-8"))]

MESSY = '''# header comment

import   std.intents
dataclass public
dataclass secret>public   # trailing
## Doc for the bot.
agent bot "spiffe://x/bot"
tool a.b{intent read data secret args{x:number,y?:string}}
tool "odd/name" { intent egress }
task t {tools a.*,"odd/name"  intents read,egress ttl 5m
  # inside the task
  delegate{to bot depth<=2}}
defaults{ttl 10m max_ttl 1h}



permit p on a.b , intent egress in t by bot when args.x>1 and(args.y=="q" or not args has y)unless -args.x < -5 ttl 1m because "ok"
forbid f when any(h in chain.hops: h.kind=="bot")   or data >= secret
# at the end
'''


def test_spec_examples_are_already_canonical():
    for path in SPEC.glob("*.agp"):
        text = path.read_text()
        assert format_text(text) == text, path


# One canonical form (issue 16, item 16): every policy of the repository, files and documentation
# alike, is what `agp fmt` makes of it. A new policy that is not is a failure here: run
# `agp fmt` on it (a documentation example that must not be canonical is fenced as `text`).


def test_every_policy_is_found():
    names = {str(p.relative_to(ROOT)) for p in POLICIES}
    assert {"stdlib/intents.agp", "tests/data/spec/rules.agp",
            "examples/policies/agentdojo/banking/policy.agp"} <= names
    assert {str(md.relative_to(ROOT)) for md, _, _ in DOC_POLICIES} >= {"README.md",
                                                                       "docs/tutorial.md"}


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_policy_file_is_canonical(path):
    text = path.read_text(encoding="utf-8")
    assert format_text(text, str(path)) == text, f"run `agp fmt {path.relative_to(ROOT)}`"


@pytest.mark.parametrize("block", DOC_POLICIES,
                         ids=lambda b: f"{b[0].relative_to(ROOT)}:{b[1]}")
def test_every_policy_in_the_documentation_is_canonical(block):
    md, line, text = block
    assert format_text(text, f"{md}:{line}") == text, \
        f"the agp block at {md.relative_to(ROOT)}:{line} is not what `agp fmt` makes of it"


def test_messy_file(snapshot):
    out = format_text(MESSY)
    assert out == snapshot
    assert format_text(out) == out


def test_comments_and_docs_are_kept():
    out = format_text(MESSY)
    for comment in ("# header comment", "# trailing", "## Doc for the bot.",
                    "# inside the task", "# at the end"):
        assert comment in out
    (agent,) = [i for i in parse(Source("x", out)).items if type(i).__name__ == "AgentDecl"]
    assert agent.doc == "Doc for the bot."


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_idempotent_and_same_ast_on_every_shipped_policy(path):
    text = path.read_text()
    once = format_text(text)
    assert format_text(once) == once
    before = parse(Source("a", text)).items
    after = parse(Source("b", once)).items
    assert shape(tuple(sorted(before, key=lambda i: i.span.start))) == shape(after)


def test_long_lines_are_broken_and_operands_aligned():
    cond = " and ".join(f"args.field_{i} == {i}" for i in range(8))
    out = format_text(f"permit p on a.b when {cond} or args.z\n")
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert lines[1].startswith("  when (args.field_0 == 0")
    assert lines[-1] == "    or args.z"


def test_nested_chains_stand_under_their_parenthesis():
    # Right-aligned at the top of the condition; under the first operand inside parentheses, so
    # that an inner `and` never lines up with the `or` around it.
    text = ('forbid f when target has host and (lower(target.host) in ["metadata.google.internal",'
            ' "metadata"] or (startswith(target.host, "169.254.") and (endswith(target.host, ".1")'
            ' or endswith(target.host, ".254") or endswith(target.host, ".253"))))\n')
    assert format_text(text) == """forbid f
  when target has host
   and (lower(target.host) in ["metadata.google.internal", "metadata"]
        or (startswith(target.host, "169.254.")
            and (endswith(target.host, ".1")
                 or endswith(target.host, ".254")
                 or endswith(target.host, ".253"))))
"""


def test_long_quantifiers_and_lists_are_broken():
    items = ", ".join(f'"host{i}.example.com"' for i in range(8))
    text = (f"permit q when any(b in task.params.bookings: b.place == args.hotel and b.start == "
            f"args.start_day and b.end == args.end_day) and args.host in [{items}]\n")
    assert format_text(text) == """permit q
  when any(b in task.params.bookings:
           b.place == args.hotel and b.start == args.start_day and b.end == args.end_day)
   and args.host in ["host0.example.com", "host1.example.com", "host2.example.com",
                     "host3.example.com", "host4.example.com", "host5.example.com",
                     "host6.example.com", "host7.example.com"]
"""


def test_count_sum_and_filters_round_trip():
    text = ("permit q when count( x in args.l   if x>1 : x<5 )>=2 and sum(x in args.l:x)>3 "
            "or all(y in [1]if true:y==1)\n")
    out = format_text(text)
    assert out == """permit q
  when (count(x in args.l if x > 1: x < 5) >= 2 and sum(x in args.l: x) > 3)
    or all(y in [1] if true: y == 1)
"""
    assert format_text(out) == out
    assert shape(parse(Source("a", text)).items) == shape(parse(Source("b", out)).items)


def test_a_long_filtered_quantifier_keeps_its_filter_on_the_first_line():
    text = ('permit q when any(b in task.params.bookings if b.kind == "hotel" and b.place != "": '
            "b.place == args.hotel and b.start == args.start_day and b.end == args.end_day)\n")
    out = format_text(text)
    assert out == """permit q
  when any(b in task.params.bookings if b.kind == "hotel" and b.place != "":
           b.place == args.hotel and b.start == args.start_day and b.end == args.end_day)
"""
    assert format_text(out) == out


def test_a_comment_after_a_comment_line_inside_a_rule_is_kept():
    # Found by test_fmt_props: `# note` used to be attached to the line that only carries
    # `# between`, which is not printed.
    text = "permit r0 unless args.n\n  # between\n  and args.n  # note\n"
    out = format_text(text)
    assert out == "permit r0\n  unless args.n and args.n  # note\n# between\n"
    assert format_text(out) == out


def test_syntax_error_is_refused():
    with pytest.raises(FormatError) as info:
        format_text("permit x when (\n")
    assert info.value.diagnostics[0].code == "syntax"


# ---- the command --------------------------------------------------------------------------------


def run(*args, input=None):
    return CliRunner().invoke(main, ["fmt", *args], input=input, catch_exceptions=False)


def test_fmt_check_write_and_exit_codes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("messy.agp").write_text(MESSY)
    shutil.copy(SPEC / "rules.agp", "clean.agp")
    r = run("--check", ".")
    assert r.exit_code == 1 and r.output.splitlines() == ["messy.agp"]
    assert Path("messy.agp").read_text() == MESSY  # --check writes nothing
    r = run(".")
    assert r.exit_code == 0
    assert Path("messy.agp").read_text() == format_text(MESSY)
    assert run("--check", ".").exit_code == 0
    Path("broken.agp").write_text("permit x when (\n")
    r = run("broken.agp", "clean.agp")
    assert r.exit_code == 2 and "broken.agp does not parse" in r.output
    assert Path("broken.agp").read_text() == "permit x when (\n"
    assert run("--check", "missing.agp").exit_code == 2


def test_fmt_stdin_and_diff(tmp_path, monkeypatch):
    r = run("-", input="permit  x\n")
    assert r.exit_code == 0 and r.output == "permit x\n"
    monkeypatch.chdir(tmp_path)
    Path("a.agp").write_text("permit  x\n")
    r = run("--diff", "a.agp")
    assert "-permit  x\n+permit x" in r.output
    assert Path("a.agp").read_text() == "permit  x\n"

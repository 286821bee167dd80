"""`agp fmt`: canonical, idempotent, keeps comments, never changes a decision."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from agp.cli import main
from agp.source import Source
from agp.syntax import parse
from agp.syntax.format import FormatError, format_text, shape

ROOT = Path(__file__).parent.parent
SPEC = Path(__file__).parent / "data" / "spec"
POLICIES = sorted(p for p in (ROOT / "examples").rglob("*.agp")) + sorted(
    (ROOT / "stdlib").glob("*.agp")) + sorted(SPEC.glob("*.agp"))

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

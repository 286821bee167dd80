"""agp.compile: one interface for both evaluators, bundles, --explain, line maps."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import linecache
import re
import sys
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from support import EXAMPLES, SPEC

import agp
from agp import limits as agp_limits
from agp.cli import main
from agp.compile import BundleError, compile_policy, evaluator
from agp.compile import ir as ir_module
from agp.compile.bundle import (
    FORMAT_VERSION,
    decode,
    dumps,
    loads,
    read_bundle,
    write_bundle,
)
from agp.compile.codegen import ExprGen, MayFail
from agp.compile.debug import policy_traceback
from agp.compile.ir import policy_to_ir
from agp.compile.passes import Fold, IsBoolean, optimise
from agp.compile.tree import Index
from agp.glob import Glob, GlobSet, compile_glob
from agp.loader import check_sources
from agp.source import Source, Span
from agp.syntax import ast
from agp.syntax.visit import missing_cases

REQUEST = json.loads((SPEC / "request.json").read_text())


def test_load_is_compiled_by_default_and_reference_is_selectable():
    compiled, reference = agp.load(SPEC), agp.load(SPEC, compiled=False)
    assert compiled.compiled and not reference.compiled
    assert isinstance(compiled.evaluator, evaluator.CompiledEvaluator)
    assert compiled.decide(REQUEST) == reference.decide(REQUEST)
    assert compiled.decide(REQUEST).ttl == 240


def test_bundle_round_trip(tmp_path):
    out = tmp_path / "spec.agpb"
    result = CliRunner().invoke(main, ["compile", "-p", str(SPEC), "-o", str(out)])
    assert result.exit_code == 0, result.output
    engine = agp.load_bundle(out)
    reference = agp.load(SPEC, compiled=False)
    assert engine.decide(REQUEST) == reference.decide(REQUEST)
    bad = dict(REQUEST, args={})  # refund_small fails to read args.amount: an error explained
    assert engine.decide(bad) == reference.decide(bad) and engine.decide(bad).errors
    # The full Policy (rule ASTs included) is rebuilt on demand, and decides the same.
    assert [r.name for r in engine.policy.rules] == [r.name for r in reference.policy.rules]
    assert agp.Engine(engine.policy, compiled=False).decide(bad) == reference.decide(bad)


def test_bundle_is_json_and_never_needs_the_sources_parsed(tmp_path):
    out = tmp_path / "b.agpb"
    policy = agp.load(SPEC, compiled=False).policy
    write_bundle(policy_to_ir(policy), out)
    header, body = out.read_bytes().split(b"\n", 1)
    assert json.loads(header)["format"] == "agp-bundle"
    first, *written = body.split(b"\n")  # what loading reads, then each rule as written
    assert json.loads(first)["hash"] == policy.hash
    assert [json.loads(line)[2] for line in written] == [r.name for r in policy.rules]


def test_tampered_bundle_is_refused(tmp_path):
    out = tmp_path / "b.agpb"
    write_bundle(policy_to_ir(agp.load(SPEC, compiled=False).policy), out)
    data = out.read_bytes().replace(b'"refund_small"', b'"refund_smalL"', 1)
    out.write_bytes(data)
    with pytest.raises(BundleError, match="modified or corrupted"):
        agp.load_bundle(out)
    result = CliRunner().invoke(main, ["compile", "-p", str(SPEC),
                                       "--check-bundle", str(out)])
    assert result.exit_code == 2
    assert "modified or corrupted" in result.output


def test_bundle_of_another_version_is_refused(tmp_path):
    out = tmp_path / "b.agpb"
    write_bundle(policy_to_ir(agp.load(SPEC, compiled=False).policy), out)
    header, body = out.read_bytes().split(b"\n", 1)
    h = json.loads(header)
    h["version"] = 99
    out.write_bytes(json.dumps(h).encode() + b"\n" + body)
    with pytest.raises(BundleError, match="format 99"):
        read_bundle(out)
    (tmp_path / "junk").write_bytes(b"\x80\x04pickle")
    with pytest.raises(BundleError, match="not an agp bundle"):
        read_bundle(tmp_path / "junk")


def test_explain_prints_levels_and_leaves():
    result = CliRunner().invoke(main, ["compile", "-p", str(SPEC), "--explain"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "level 1: tool name" in out and "level 2: task kind" in out
    refund = out[out.index("tool payments.refund"):]
    refund = refund[: refund.index("\n  tool ") if "\n  tool " in refund else len(refund)]
    # forbids and asks are listed before permits; the permit carries its agent test
    assert refund.index("ask refund_large") < refund.index("permit refund_small by support_bot")
    assert "any other tool name" in out and "run-time globs: http.*" in out


def test_policy_errors_exit_1(tmp_path):
    bad = tmp_path / "bad.agp"
    bad.write_text("permit p on x when nope\n")
    result = CliRunner().invoke(main, ["compile", "-p", str(bad)])
    assert result.exit_code == 1


def test_generated_code_maps_back_to_the_policy():
    engine = agp.load(SPEC)
    ev = engine.evaluator
    ev.warm()
    assert ev.ctx.line_maps
    filename, line_map = next(iter(ev.ctx.line_maps.items()))
    source = "".join(linecache.getlines(filename))
    assert source.startswith("def leaf_")
    rules_file = (SPEC / "rules.agp").read_text()
    for line, span in line_map.items():
        assert ev.locate(filename, line) is span
        assert span.source.text == rules_file or span.source.name.endswith(".agp")
    # Each rule's comment names the policy position its code came from.
    spans = {str(s) for m in ev.ctx.line_maps.values() for s in m.values()}
    assert any(s.endswith("tests/data/spec/rules.agp:1:1") for s in spans)
    assert any(f"at '{s}'" in "".join(linecache.getlines(f)) for f in ev.ctx.line_maps
               for s in spans)


def test_constant_folding_and_pruning():
    text = ("tool t { intent read }\nintent read\ndataclass a\ndataclass b > a\n"
            "permit never on t when 1 > 2\npermit always on t when a <= b and 2h > 30m\n"
            "permit same on t when not (1 + 1 == 2) or true\n")
    policy, diags = check_sources([Source("f.agp", text)])
    assert policy is not None, diags
    rules = {r.name: r for r in optimise(policy_to_ir(policy)).rules}
    assert "never" not in rules  # a `when` that folds to false can neither match nor fail
    assert rules["always"].when is None and rules["same"].when is None
    ev = compile_policy(policy)
    d = ev.decide({"agent": {"id": "x"}, "tool": "t"})
    assert d.rules == ["always", "same"]
    assert d == agp.Engine(policy, compiled=False).decide({"agent": {"id": "x"}, "tool": "t"})


def test_undeclared_tool_names_match_globs_at_run_time():
    engine = agp.load(SPEC)
    ev = engine.evaluator
    assert "http.get" in ev.leaves and "http.post" not in ev.leaves
    req = {"agent": {"id": "a"}, "tool": "http.post", "data": ["restricted"],
           "target": {"external": True}}
    d = engine.decide(req)
    assert d.rules == ["no_restricted_egress"]
    assert "http.post" in ev.index.names


# ---- issue 16: bounded memory for unmentioned tool names, near-linear tree construction --------

GLOBBY = """
intent i0, i1
dataclass c0
task k0 { }
tool http.* { intent i0 }
tool "*.read" { intent i1 }
tool crm.lookup { intent i0 }
forbid egress on intent i0 when args.n > 5
permit reads on "*.read"
permit web on http.* in k0 when args.n < 3
ask mixed on "h*.*d" unless args.n == 1
permit crm on crm.lookup
"""


def _generated(ev) -> list[str]:
    """The linecache entries of this policy set's generated code."""
    prefix = f"<agp {ev.ctx.hash[7:19]} "
    return [f for f in list(linecache.cache) if f.startswith(prefix)]


def _unmentioned_names(rng, count: int) -> list[str]:
    alphabet = "abcdefghijklmnopqrstuvwxyz.-_/:0123456789"
    heads = ["", "http.", "h", "crm.", "x."]
    tails = ["", ".read", "d", ".get"]
    out = []
    for i in range(count):
        size = rng.choice([1, 8, 40, 300]) if i % 100 else agp_limits.MAX_STRING_LENGTH - 20
        body = "".join(rng.choices(alphabet, k=size))
        out.append(rng.choice(heads) + body + rng.choice(tails))
    return out


def test_unmentioned_tool_names_share_leaves_and_generated_code(write_policy):
    """Issue 16, item 10: each new name used to add a leaf, a generated function, a linecache
    entry and a line map (40,000 names: 320 MiB; long names: 2.6 GiB). A name's leaf depends
    only on the globs it matches, so names share leaves, and every memo is bounded."""
    import random

    path = write_policy(GLOBBY)
    engine, reference = agp.load(path), agp.load(path, compiled=False)
    ev = engine.evaluator
    names = _unmentioned_names(random.Random(16), 2000)
    for i, name in enumerate(names):
        req = {"agent": {"id": "a"}, "tool": name, "args": {"n": i % 8}}
        if i % 3 == 0:
            req["task"] = {"kind": "k0", "id": "t"}
        assert engine.decide(req) == reference.decide(req), name[:80]
    index = ev.index
    # One leaf per set of matching globs (2 tool globs and 3 rule globs here: the sets reached
    # are few), none per name; only short names are remembered.
    assert len(index.signatures) < 20
    assert len(index.names) <= index.NAMES
    assert all(len(n) <= index.NAME_LENGTH for n in index.names)
    # Generated functions (two task kinds at most per leaf), their linecache entries and line
    # maps follow the leaves, not the names; no name is written into generated code.
    generated = _generated(ev)
    assert len(generated) == len(ev.ctx.line_maps) <= 2 * (len(index.signatures) + 1)
    assert all(len("".join(linecache.getlines(f))) < 10_000 for f in generated)


def test_leaf_memos_stay_bounded_when_signatures_churn(write_policy, monkeypatch):
    """With more distinct signatures than the bound, old leaves are dropped (and rebuilt the
    same on return), and the generated code alive stays bounded."""
    monkeypatch.setattr(evaluator.Context, "FUNCTIONS", 4)
    monkeypatch.setattr(Index, "NAMES", 8)
    rules = "\n".join(f"permit r{i} on g{i}.* when args.n > {i % 4}" for i in range(30))
    path = write_policy("intent i0\ntask k0 { }\n" + rules + "\n")
    engine, reference = agp.load(path), agp.load(path, compiled=False)
    ev = engine.evaluator
    ev.index.signature_bound = 3
    for round_ in range(3):
        for i in range(30):
            req = {"agent": {"id": "a"}, "tool": f"g{i}.call{round_}", "args": {"n": 2}}
            assert engine.decide(req) == reference.decide(req)
            assert len(ev.index.signatures) <= 3 and len(ev.index.names) <= 8
            # Alive: the shared-code memo, plus the functions the leaves alive hold (freed as
            # soon as dropped: generated code makes no reference cycle, no collection needed).
            assert len(_generated(ev)) <= 4 + 3


def test_reload_frees_generated_code(write_policy):
    path = write_policy("intent i0\npermit p on t when args.n > 1\nforbid f on \"u*\"\n")
    engine = agp.load(path)
    for tool in ("t", "u1", "u2", "v"):
        engine.decide({"agent": {"id": "a"}, "tool": tool, "args": {"n": 2}})
    old = engine.evaluator
    assert len(_generated(old)) == len(old.ctx.line_maps) > 0
    before = set(_generated(old))
    path.write_text("intent i0\npermit p on t when args.n > 2\n")
    engine.reload()
    assert engine.evaluator.ctx.hash != old.ctx.hash
    del old
    gc.collect()
    assert not before & set(linecache.cache)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("ab.*?", min_size=0, max_size=6), max_size=12),
       st.lists(st.text("ab.", max_size=9), min_size=1, max_size=10))
def test_glob_set_finds_exactly_the_matching_globs(patterns, names):
    globs = [(i, compile_glob(p)) for i, p in enumerate(patterns)]
    found = GlobSet(globs)
    for name in names:
        assert found.matching(name) == [i for i, g in globs if g.match(name)]


def test_tree_of_many_names_and_globs_is_the_naive_one(monkeypatch):
    """Issue 16, item 13: 6,000 exact names x 6,000 glob rules took 28 s to compile (every name
    tried against every glob). The tree built through the glob index has, for every name, the
    tool declarations and rules a plain scan finds, names matching several globs included, and
    tries a number of globs near-linear in names plus globs, not their product."""
    tools = [f"tool s{i % 7}.op{i} {{ intent i0 }}" for i in range(300)]
    rules = [f'forbid g{j} on "s{j % 7}.op{j}*" when args.n == {j}' for j in range(300)]
    rules += ['permit p on "s1.*"', 'ask q on "*3"', 'forbid r on "s?.op1*7"', "permit w"]
    policy, diags = check_sources([Source("w.agp", "intent i0\n" + "\n".join(tools + rules))])
    assert policy is not None, diags
    tried = []
    match = Glob.match
    monkeypatch.setattr(Glob, "match", lambda g, s: tried.append(1) or match(g, s))
    index = compile_policy(policy).index
    monkeypatch.undo()
    assert len(index.leaves) == 300 and len(tried) < 5 * (300 + 304)  # a scan: 300 x 306
    for name, leaf in index.leaves.items():
        want_tools = tuple(i for i, t in enumerate(policy.tools) if t.glob.match(name))
        want_rules = [i for i, r in enumerate(policy.rules)
                      if not r.scoped_on or any(g.match(name) for g in r.on_tools)]
        assert leaf.tools == want_tools, name
        assert [r.index for r, _ in leaf.rules] == want_rules, name
    names = {n: [r.name for r, _ in leaf.rules] for n, leaf in index.leaves.items()}
    assert names["s1.op15"] == ["g1", "g15", "p", "w"]
    assert names["s3.op143"] == ["g143", "q", "w"]


# ---- issue 17: the typed IR, walked one way; inspectable compilation ---------------------------


@pytest.mark.parametrize("walker", [ExprGen, MayFail, IsBoolean, Fold])
def test_every_walker_of_the_ir_has_a_case_for_every_form(walker, monkeypatch):
    """The IR's conditions are the AST, and the compiler walks them with the one visitor: each
    walker has a case per form, and a new form is named missing in each until it gets one."""
    assert missing_cases(walker) == []

    @dataclasses.dataclass(frozen=True, slots=True)
    class Session:
        span: Span

    monkeypatch.setattr(ast, "EXPR_FORMS", (*ast.EXPR_FORMS, Session))
    assert missing_cases(walker) == ["Session"]


def test_the_ir_holds_the_checked_ast_and_no_copy_of_it():
    """Conditions used to be converted to nested lists (`["bin", op, l, r, span]`) and back to
    the AST on the error path; the IR now holds the checker's nodes themselves."""
    policy = agp.load(SPEC, compiled=False).policy
    program = policy_to_ir(policy)
    assert all(r.when is p.when and r.unless is p.unless
               for r, p in zip(program.rules, policy.rules, strict=True))
    assert [r.index for r in program.rules] == list(range(len(policy.rules)))
    assert not hasattr(ir_module, "expr_in") and not hasattr(ir_module, "expr_out")


def _policy_sets():
    # every folder of .agp files whose parent is not itself a policy set
    folders = {p.parent for p in EXAMPLES.rglob("*.agp")}
    return [SPEC, *sorted(d for d in folders if d.parent not in folders)]


@pytest.mark.parametrize("path", _policy_sets(), ids=lambda p: p.name)
def test_the_bundle_codec_round_trips_every_example(path):
    program = policy_to_ir(agp.load(path, compiled=False).policy)
    again = loads(dumps(program))
    assert dumps(again) == dumps(program)
    assert [str(r.span) for r in again.rules] == [str(r.span) for r in program.rules]



def test_a_decoded_program_is_built_whole_and_frozen():
    """Decoding builds the IR's dataclasses without their __init__ (for speed): every field is
    set, and what it builds stays frozen and hashable like what the parser builds."""
    program = policy_to_ir(agp.load(SPEC, compiled=False).policy)
    again = loads(dumps(program))
    # Reads every field: an unset slot would raise. (The rules as written are decoded as they
    # are read; a bundle also holds them after the passes, by form.)
    assert repr(list(again.rules)) == repr(list(program.rules))
    assert repr(dataclasses.replace(again, rules=(), compiled=None)) == \
        repr(dataclasses.replace(program, rules=()))
    rule = next(r for r in again.rules if r.when is not None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.span.start = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.when.span = rule.span  # type: ignore[misc]
    assert hash(rule.span) == hash(Span(rule.span.source, rule.span.start, rule.span.end))
    assert {rule.when: 1}[rule.when] == 1


def test_the_bundle_codec_refuses_a_dataclass_whose_init_does_more_than_set_fields():
    """A class with a __post_init__ (which might validate) is never built around it."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            assert self.n >= 0

    with pytest.raises(TypeError, match="__post_init__"):
        decode(["Checked", 1], Checked, [])


def _bundle_with_body(path, body: bytes) -> None:
    """A bundle whose header vouches for `body` (as one edited by someone who recomputed the
    hash would)."""
    first = json.loads(body.split(b"\n", 1)[0])
    policy = first.get("hash") if isinstance(first, dict) else None
    header = {"format": "agp-bundle", "version": FORMAT_VERSION, "agp": agp.__version__,
              "sha256": hashlib.sha256(body).hexdigest(), "policy": policy}
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)


def _replace_somewhere(data, choice: int, value):
    """`data` with one of its inner values (the `choice`-th, depth first) replaced."""
    count = [choice]

    def go(x):
        if count[0] == 0:
            count[0] = -1
            return value
        count[0] -= 1
        if isinstance(x, list):
            return [go(i) for i in x]
        if isinstance(x, dict):
            return {k: go(v) for k, v in x.items()}
        return x

    return go(data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=5) | st.sampled_from(["Binary", "NameRef", "IRRule", "Literal", "Span"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3), max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2_000), JSON_VALUES)
def test_a_malformed_bundle_body_fails_only_with_a_bundle_error(choice, value):
    """Whatever a bundle's body holds (its hash recomputed), loading it either works and
    decides, or raises BundleError: no other exception escapes."""
    import tempfile

    # The first line (what loading reads) or one rule as written (read on the error path).
    lines = [json.loads(line) for line in _SPEC_BODY.split(b"\n")]
    line = choice % len(lines)
    lines[line] = _replace_somewhere(lines[line], choice // len(lines), value)
    body = b"\n".join(json.dumps(x, separators=(",", ":")).encode() for x in lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.agpb"
        _bundle_with_body(path, body)
        try:
            engine = agp.load_bundle(path)
            decisions = [engine.decide(REQUEST), engine.decide(dict(REQUEST, args={})),
                         *(r.name for r in engine.policy.rules)]
        except BundleError:
            return
    assert decisions[0].decision in ("allow", "deny", "ask")


_SPEC_BODY = dumps(policy_to_ir(agp.load(SPEC, compiled=False).policy))


def test_agp_compile_builds_the_ir_once(monkeypatch, tmp_path):
    """`agp compile -o` used to build the IR three times: when loading the engine (compiled),
    when compiling again to time it, and when writing the bundle."""
    import agp.compile

    built = []
    real = ir_module.policy_to_ir

    def counted(policy):
        built.append(policy.hash)
        return real(policy)

    monkeypatch.setattr(ir_module, "policy_to_ir", counted)
    monkeypatch.setattr(agp.compile, "policy_to_ir", counted)
    out = tmp_path / "b.agpb"
    result = CliRunner().invoke(main, ["compile", "-p", str(SPEC), "--explain", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(built) == 1
    assert agp.load_bundle(out).decide(REQUEST) == agp.load(SPEC).decide(REQUEST)


def test_emit_python_prints_every_leaf_with_its_policy_positions():
    result = CliRunner().invoke(main, ["compile", "-p", str(SPEC), "--emit", "python"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    compile(out, "<emitted>", "exec")  # it is Python
    functions = re.findall(r"^def (leaf_\d+)\(R, ID, I, D, NOW, failed\):$", out, re.M)
    assert functions and len(functions) == len(set(functions))  # each shared function once
    engine = agp.load(SPEC)
    for name in engine.evaluator.leaves:
        assert f"# tool {name!r}, " in out
    assert "# any other tool name, " in out
    # Every rule's code names its position, and every condition its own; each points at the
    # rule's text (or its condition's) in the policy file.
    texts = {p.name: p.read_text() for p in SPEC.glob("*.agp")}
    rules = re.findall(r"# (permit|forbid|ask) '(\w+)' at '(?:.*/)?([\w.]+):(\d+):(\d+)'", out)
    assert {name for _, name, *_ in rules} == {r.name for r in engine.policy.rules}
    for effect, name, file, line, column in rules:
        text = texts[file].splitlines()[int(line) - 1][int(column) - 1:]
        assert text.startswith(f"{effect} {name}")
    conditions = re.findall(r"  # at '(?:.*/)?([\w.]+):(\d+):(\d+)'$", out, re.M)
    starts = {(c.span.source.name.rsplit("/", 1)[-1], c.span.line, c.span.column)
              for r in engine.policy.rules for c in (r.when, r.unless) if c is not None}
    assert conditions and {(f, int(a), int(b)) for f, a, b in conditions} <= starts


BROKEN = """intent read
agent bots "bot-*"
tool t { intent read }

permit small on t
  when args.n > args.m
forbid guarded on t by bots
"""


def _broken_order(*args):
    raise ZeroDivisionError("a defect of generated code")


def test_a_defect_of_generated_code_is_traced_to_the_policy_line(write_policy, monkeypatch,
                                                                  caplog):
    """Generated code that raises where the reference evaluator finds no error is a defect of
    agp: the reference's decision stands, and the traceback logged has a frame at the policy
    file and line (carets under the condition), then the generated line."""
    path = write_policy(BROKEN)
    engine, reference = agp.load(path), agp.load(path, compiled=False)
    for leaf in engine.evaluator.leaves.values():  # every leaf is generated at load
        for fn in (leaf.fn_none, *leaf.fns.values()):
            if fn is not None:
                fn.__globals__["_order"] = _broken_order
    request = {"agent": {"id": "a"}, "tool": "t", "args": {"n": 2, "m": 1}}
    with caplog.at_level("WARNING", logger="agp.compile"):
        assert engine.decide(request) == reference.decide(request)
    [record] = caplog.records
    assert "rule small raised where the reference evaluator finds no error" in record.message
    shown = "".join(traceback.format_exception(record.exc_info[1]))
    policy_frame = (f'  File "{path}", line 6, in permit small\n'
                    "    when args.n > args.m\n"
                    "         ^^^^^^^^^^^^^^^\n"
                    '  File "<agp ')
    assert policy_frame in shown
    assert "_order('>'" in shown.split(policy_frame, 1)[1]  # the generated line, from linecache
    again = policy_traceback(record.exc_info[1])  # rewriting twice adds nothing
    assert "".join(traceback.format_exception(again)) == shown
    # Under the tests' strict mode the defect fails the test, with the same traceback as cause.
    monkeypatch.setattr(evaluator, "CHECK_FALLBACK", True)
    with pytest.raises(AssertionError, match="compiled rule small raised") as raised:
        engine.decide(request)
    assert policy_frame in "".join(traceback.format_exception(raised.value.__cause__))


def test_an_exception_escaping_generated_code_shows_the_policy_line(write_policy, monkeypatch):
    path = write_policy(BROKEN)
    engine = agp.load(path)
    monkeypatch.setattr(Glob, "match", lambda glob, subject: 1 / 0)  # the `by bots` guard
    with pytest.raises(ZeroDivisionError) as raised:
        engine.decide({"agent": {"id": "bot-1"}, "tool": "t", "args": {"n": 2, "m": 1}})
    shown = "".join(traceback.format_exception(raised.value))
    assert (f'  File "{path}", line 7, in forbid guarded\n'
            "    forbid guarded on t by bots\n"
            '  File "<agp ') in shown


def generated_lines(engine, request) -> list[tuple[str, int]]:
    """The (pseudo-filename, line) of every generated line that deciding `request` runs, as a
    line profiler sees them."""
    hits = []

    def tracer(frame, event, arg):
        if frame.f_code.co_filename.startswith("<agp "):
            if event == "line":
                hits.append((frame.f_code.co_filename, frame.f_lineno))
            return tracer
        return None

    sys.settrace(tracer)
    try:
        engine.decide(request)
    finally:
        sys.settrace(None)
    return hits


def test_a_line_profile_of_generated_code_maps_to_policy_lines(write_policy):
    """A line profiler sees generated lines (`<agp HASH leaf N>`, LINE); the line map turns each
    into the policy position it came from, and linecache gives the generated text."""
    path = write_policy(BROKEN)
    engine = agp.load(path)
    ev = engine.evaluator
    hits = generated_lines(engine, {"agent": {"id": "bot-1"}, "tool": "t",
                                    "args": {"n": 2, "m": 1}})
    located = {ev.locate(f, line) for f, line in hits} - {None}
    assert {(s.line, s.text.split()[0]) for s in located} >= {(5, "permit"), (6, "args.n"),
                                                             (7, "forbid")}
    assert all(linecache.getline(f, line).strip() for f, line in hits)


SHARED_FORMS = """
dataclass public
dataclass internal > public
intent call
""" + "".join(
    f"tool t{i} {{ intent call  data public  args {{ amount: number }} }}\n"
    f"permit p{i} on t{i} when args.amount <= {100 + i} and agent.attrs.role in [\"r{i}\"] "
    f"and data <= {'internal' if i % 2 else 'public'}\n"
    for i in range(40))


def test_load_generates_every_leaf_so_no_decision_pays_for_code(write_policy, monkeypatch):
    """Issue 15, item 1: after `agp.load` returns, deciding a tool for the first time (one the
    policy names, or one that matches none of its globs) generates and compiles nothing."""
    engine = agp.load(write_policy(SHARED_FORMS))

    def refuse(*args, **kwargs):
        raise AssertionError("code generated during a decision")

    monkeypatch.setattr(evaluator, "generate_leaf", refuse)
    monkeypatch.setattr(evaluator, "compile_leaf", refuse)
    for tool in [*(f"t{i}" for i in range(40)), "never.named"]:
        d = engine.decide({"agent": {"id": "a", "attrs": {"role": "r3"}}, "tool": tool,
                           "args": {"amount": 50}, "data": ["public"]})
        assert d.decision == ("allow" if tool == "t3" else "deny")


def test_rules_that_differ_only_in_constants_share_compiled_code(write_policy):
    """One `compile()` for the 40 leaves whose rules have the same form, each function bound to
    its own constants: the decisions are those of the reference evaluator."""
    path = write_policy(SHARED_FORMS)
    engine, reference = agp.load(path), agp.load(path, compiled=False)
    ctx = engine.evaluator.ctx
    assert len(ctx.codes) == 2  # the 40 tools' leaf, and the leaf of every other name
    assert len(ctx.line_maps) == 41  # but a function each, with its own filename and lines
    for i in (0, 1, 7, 39):
        for amount in (100 + i, 101 + i):
            for data in (["public"], ["internal"]):
                request = {"agent": {"id": "a", "attrs": {"role": f"r{i}"}}, "tool": f"t{i}",
                           "args": {"amount": amount}, "data": data}
                assert engine.decide(request) == reference.decide(request)


def test_a_condition_that_raises_does_not_convert_a_history_it_does_not_read(monkeypatch):
    """A rule whose compiled condition raises is decided again by the reference evaluator, which
    writes its error. Its environment holds the task's session only when a rule it decides
    reads it: otherwise a long history would cost every such call time in its length."""
    from agp import interp
    from agp.loader import check_sources
    from agp.source import Source

    text = """
dataclass public
tool t { }
task k { tools t }
forbid outside on t when target.external
permit counted on t when count(h in task.history: h.tool == "t") < 5
permit plain on t
"""
    policy, diagnostics = check_sources([Source("s.agp", text)])
    assert policy is not None, diagnostics
    engine = agp.Engine(policy, evaluator=compile_policy(policy))
    item = {"tool": "t", "decision": "allow", "at": "2026-11-28T09:00:00Z"}
    request = {"agent": {"id": "a"}, "tool": "t", "now": "2026-11-28T10:00:00Z",
               "task": {"kind": "k", "history": [item] * 1000}}
    converted: list[int] = []
    real = interp.history_value
    monkeypatch.setattr(interp, "history_value",
                        lambda history, now: converted.append(len(history)) or real(history, now))
    decision = engine.decide(request)
    # `outside` raised (no target): a forbid that errs matches, and says why.
    assert decision.rules == ["outside"] and "target" in decision.errors[0]
    assert converted == []  # `outside` reads no session: the history was never converted
    reference = interp.decide(policy, request)
    assert (decision.decision, decision.rules, decision.errors) == (
        reference.decision, reference.rules, reference.errors)


# ---- rule code by form (issue 15, item 1) ----------------------------------------------------

TWO_OF_A_FORM = """
tool t { args { n: number, who: string } }
permit small on t when args.n <= 10 and args.who matches "a*"
permit large on t when args.n <= 1000 and args.who matches "b?c*d"
"""


def test_two_rules_of_one_form_share_code_and_decide_by_their_own_constants(write_policy):
    """The generator runs once for the two rules (their literals differ, their form does not);
    each binds its own constants, and a traced decision maps each one's lines to its own
    policy positions."""
    path = write_policy(TWO_OF_A_FORM)
    engine, reference = agp.load(path), agp.load(path, compiled=False)
    ev = engine.evaluator
    assert len(ev.ctx.forms.rules) == 1
    small, large = (ev.ctx.rule_codes[(i, None)] for i in (0, 1))
    assert small.form == large.form and small.values != large.values
    # "b?c*d" is not linear to match: its matcher is the shared function, with the same text.
    for n, who, allowed in ((5, "ax", ["small"]), (50, "ax", []), (50, "bxcyd", ["large"]),
                            (5, "bxcd", ["large"]), (5, "zz", []), (2000, "bxcd", [])):
        request = {"agent": {"id": "a"}, "tool": "t", "args": {"n": n, "who": who}}
        decision = engine.decide(request)
        assert decision == reference.decide(request)
        assert (list(decision.rules) if decision.decision == "allow" else []) == allowed

    hits = generated_lines(engine, {"agent": {"id": "a"}, "tool": "t",
                                    "args": {"n": 50, "who": "bxcd"}})
    located = {ev.locate(f, line) for f, line in hits} - {None}
    assert {s.text for s in located} >= {
        'args.n <= 10 and args.who matches "a*"', 'args.n <= 1000 and args.who matches "b?c*d"',
        'permit small on t when args.n <= 10 and args.who matches "a*"'}
    leaf = next(f for f, _ in hits if f in ev.ctx.line_maps)
    shown = "".join(linecache.getlines(leaf))
    assert "# permit 'small' at" in shown and "# permit 'large' at" in shown


def _comparable(value: object) -> object:
    pattern = getattr(value, "pattern", None)
    return (type(value).__name__, pattern) if isinstance(pattern, str) else value


_LEFT = ["args.n", "args.s", "agent.attrs.role", "target.x"]
_LITERALS = st.one_of(st.integers(-5, 5), st.floats(-2, 2, allow_nan=False),
                      st.sampled_from(["a", "b*", "?x*y", "", "true"]), st.booleans())


@st.composite
def _condition(draw, depth: int = 0) -> str:
    if depth < 2 and draw(st.booleans()):
        op = draw(st.sampled_from(["and", "or"]))
        return f"({draw(_condition(depth + 1))} {op} {draw(_condition(depth + 1))})"
    left = draw(st.sampled_from(_LEFT))
    kind = draw(st.sampled_from(["cmp", "in", "matches", "class", "not"]))
    if kind == "in":
        items = draw(st.lists(_LITERALS, max_size=3))
        return f"{left} in [{', '.join(json.dumps(v) for v in items)}]"
    if kind == "matches":
        return f"{left} matches {json.dumps(draw(st.sampled_from(['a*', '?x*y', 'ab'])))}"
    if kind == "class":
        return f"data {draw(st.sampled_from(['<=', '>']))} {draw(st.sampled_from(['low', 'high']))}"
    if kind == "not":
        return f"not ({draw(_condition(depth + 1))})"
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">="]))
    return f"{left} {op} {json.dumps(draw(_LITERALS))}"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["permit", "forbid", "ask"]), _condition()),
                min_size=2, max_size=6), st.lists(st.sampled_from(["a", "ab", "x", 3]), max_size=2))
def test_a_rules_code_from_its_form_is_the_code_generated_for_it_alone(rules, agents):
    """Sharing a form never changes a rule's code: its text and constants are those that the
    generator writes for the rule alone (whatever rules of the form came first)."""
    from agp.compile.codegen import rule_code

    text = "dataclass low\ndataclass high > low\ntool t { args { n: number, s: string } }\n"
    by = f" by {', '.join(json.dumps(a) for a in agents if isinstance(a, str))}" \
        if any(isinstance(a, str) for a in agents) else ""
    text += "".join(f"{effect} r{i} on t{by if i % 2 else ''} when {cond}\n"
                    for i, (effect, cond) in enumerate(rules))
    policy, diags = check_sources([Source("p.agp", text)])
    if policy is None:  # a condition the checker refuses (e.g. a type error): nothing to compile
        return
    ev = compile_policy(policy)
    compiled = {r.index: r for r in ev.index.rules}  # the rules after the passes
    for (index, dyn), shared in ev.ctx.rule_codes.items():
        rule = compiled[index]
        alone = rule_code(rule, dyn, ev.ctx.records[index], ev.ctx.labels, ev.ctx.lattice)
        assert shared.lines == alone.lines and shared.uses == alone.uses
        assert list(map(_comparable, shared.values)) == list(map(_comparable, alone.values))

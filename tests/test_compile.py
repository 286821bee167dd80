"""agp.compile: one interface for both evaluators, bundles, --explain, line maps."""

from __future__ import annotations

import gc
import json
import linecache
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import agp
from agp import limits as agp_limits
from agp.cli import main
from agp.compile import BundleError, compile_policy, evaluator
from agp.compile.bundle import read_bundle, write_bundle
from agp.compile.ir import policy_to_ir
from agp.compile.passes import optimise
from agp.compile.tree import Index
from agp.glob import Glob, GlobSet, compile_glob
from agp.loader import check_sources
from agp.source import Source

SPEC = Path(__file__).resolve().parent / "conformance" / "data"
REQUEST = json.loads((SPEC / "formats_request.json").read_text())


def test_load_is_compiled_by_default_and_reference_is_selectable():
    compiled, reference = agp.load(SPEC / "spec"), agp.load(SPEC / "spec", compiled=False)
    assert compiled.compiled and not reference.compiled
    assert isinstance(compiled.evaluator, evaluator.CompiledEvaluator)
    assert compiled.decide(REQUEST) == reference.decide(REQUEST)
    assert compiled.decide(REQUEST).ttl == 240


def test_bundle_round_trip(tmp_path):
    out = tmp_path / "spec.agpb"
    result = CliRunner().invoke(main, ["compile", "-p", str(SPEC / "spec"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    engine = agp.load_bundle(out)
    reference = agp.load(SPEC / "spec", compiled=False)
    assert engine.decide(REQUEST) == reference.decide(REQUEST)
    bad = dict(REQUEST, args={})  # refund_small fails to read args.amount: an error explained
    assert engine.decide(bad) == reference.decide(bad) and engine.decide(bad).errors
    # The full Policy (rule ASTs included) is rebuilt on demand, and decides the same.
    assert [r.name for r in engine.policy.rules] == [r.name for r in reference.policy.rules]
    assert agp.Engine(engine.policy, compiled=False).decide(bad) == reference.decide(bad)


def test_bundle_is_json_and_never_needs_the_sources_parsed(tmp_path):
    out = tmp_path / "b.agpb"
    policy = agp.load(SPEC / "spec", compiled=False).policy
    write_bundle(policy_to_ir(policy), out)
    header, body = out.read_bytes().split(b"\n", 1)
    assert json.loads(header)["format"] == "agp-bundle"
    assert json.loads(body)["hash"] == policy.hash


def test_tampered_bundle_is_refused(tmp_path):
    out = tmp_path / "b.agpb"
    write_bundle(policy_to_ir(agp.load(SPEC / "spec", compiled=False).policy), out)
    data = out.read_bytes().replace(b'"refund_small"', b'"refund_smalL"', 1)
    out.write_bytes(data)
    with pytest.raises(BundleError, match="modified or corrupted"):
        agp.load_bundle(out)
    result = CliRunner().invoke(main, ["compile", "-p", str(SPEC / "spec"),
                                       "--check-bundle", str(out)])
    assert result.exit_code == 2
    assert "modified or corrupted" in result.output


def test_bundle_of_another_version_is_refused(tmp_path):
    out = tmp_path / "b.agpb"
    write_bundle(policy_to_ir(agp.load(SPEC / "spec", compiled=False).policy), out)
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
    result = CliRunner().invoke(main, ["compile", "-p", str(SPEC / "spec"), "--explain"])
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
    engine = agp.load(SPEC / "spec")
    ev = engine.evaluator
    ev.warm()
    assert ev.ctx.line_maps
    filename, line_map = next(iter(ev.ctx.line_maps.items()))
    source = "".join(linecache.getlines(filename))
    assert source.startswith("def leaf_")
    rules_file = (SPEC / "spec" / "rules.agp").read_text()
    for line, span in line_map.items():
        assert ev.locate(filename, line) is span
        assert span.source.text == rules_file or span.source.name.endswith(".agp")
    # Each rule's comment names the policy position its code came from.
    spans = {str(s) for m in ev.ctx.line_maps.values() for s in m.values()}
    assert "tests/conformance/data/spec/rules.agp:1:1" in {s[-41:] for s in spans}
    assert any(f"at '{s}'" in "".join(linecache.getlines(f)) for f in ev.ctx.line_maps
               for s in spans)


def test_constant_folding_and_pruning():
    text = ("tool t { intent read }\nintent read\ndataclass a\ndataclass b > a\n"
            "permit never on t when 1 > 2\npermit always on t when a <= b and 2h > 30m\n"
            "permit same on t when not (1 + 1 == 2) or true\n")
    policy, diags = check_sources([Source("f.agp", text)])
    assert policy is not None, diags
    rules = dict((r["name"], r) for _, r in optimise(policy_to_ir(policy)))
    assert "never" not in rules  # a `when` that folds to false can neither match nor fail
    assert rules["always"]["when"] is None and rules["same"]["when"] is None
    ev = compile_policy(policy)
    d = ev.decide({"agent": {"id": "x"}, "tool": "t"})
    assert d.rules == ["always", "same"]
    assert d == agp.Engine(policy, compiled=False).decide({"agent": {"id": "x"}, "tool": "t"})


def test_undeclared_tool_names_match_globs_at_run_time():
    engine = agp.load(SPEC / "spec")
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
        assert [i for i, _, _ in leaf.rules] == want_rules, name
    names = {n: [r["name"] for _, r, _ in leaf.rules] for n, leaf in index.leaves.items()}
    assert names["s1.op15"] == ["g1", "g15", "p", "w"]
    assert names["s3.op143"] == ["g143", "q", "w"]

"""agp.compile: one interface for both evaluators, bundles, --explain, line maps."""

from __future__ import annotations

import json
import linecache
from pathlib import Path

import pytest
from click.testing import CliRunner

import agp
from agp.cli import main
from agp.compile import BundleError, compile_policy, evaluator
from agp.compile.bundle import read_bundle, write_bundle
from agp.compile.ir import policy_to_ir
from agp.compile.passes import optimise

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
    from agp.loader import check_sources
    from agp.source import Source

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
    assert "http.post" in ev.index.undeclared

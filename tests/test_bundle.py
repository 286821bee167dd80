"""Bundles (format 4): rules after the passes stored by form in columns, rules as written
decoded only on the error path; a bundle decides exactly as `agp.load` does, and a damaged one is
refused."""

from __future__ import annotations

import hashlib
import json
import linecache
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from support import SPEC
from test_differential import check_text, policy_sets, request_values

import agp
from agp.cli import main
from agp.compile import BundleError, compile_policy, evaluator, load_bundle_evaluator, passes
from agp.compile.bundle import FORMAT_VERSION, read_bundle, write_bundle
from agp.compile.ir import policy_to_ir
from agp.source import Source

REQUEST = json.loads((SPEC / "request.json").read_text())


def _leaf_spans(ev: evaluator.CompiledEvaluator) -> dict[str, list[tuple[int, str]]]:
    """Each mentioned tool's leaf (no task) as the policy positions of its generated lines: what
    `locate` answers, independent of the functions' pseudo-filenames."""
    out = {}
    for name, leaf in ev.leaves.items():
        filename = leaf.fn_for(None).__code__.co_filename
        spans = ev.ctx.line_maps[filename]
        out[name] = sorted((line, str(ev.locate(filename, line))) for line in spans)
    return out


@settings(max_examples=60, deadline=None)
@given(policy_sets(), st.lists(request_values(), min_size=1, max_size=5))
def test_a_bundle_decides_as_agp_load_does(text, requests):
    """Written to a file and loaded, a generated policy set decides every request as the engine
    compiled from the policy does (decision, rules, reasons and errors), and its generated lines
    point at the same policy positions."""
    policy, _ = check_text(text)
    assume(policy is not None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.agpb"
        write_bundle(policy_to_ir(policy), path)
        bundled = load_bundle_evaluator(path)
    compiled = compile_policy(policy)
    for req in requests:
        assert bundled.decide(req) == compiled.decide(req), f"\n{text}\n{json.dumps(req)}"
    assert _leaf_spans(bundled) == _leaf_spans(compiled)
    assert [r.name for r in bundled.full_policy().rules] == [r.name for r in policy.rules]


def _spec_bundle(tmp_path: Path) -> Path:
    path = tmp_path / "spec.agpb"
    write_bundle(policy_to_ir(agp.load(SPEC, compiled=False).policy), path)
    return path


def test_loading_runs_no_pass_and_decodes_no_rule_as_written(tmp_path, monkeypatch):
    """The passes ran when the bundle was written; the rules as written are decoded one by one,
    only for the rule whose error must be explained."""
    path = _spec_bundle(tmp_path)

    def no_pass(program):
        raise AssertionError("a pass ran at load")

    monkeypatch.setattr(passes, "PASSES", (no_pass,))
    ev = load_bundle_evaluator(path)
    written = ev.ctx.ir.rules
    reference = agp.load(SPEC, compiled=False)
    assert ev.decide(REQUEST) == reference.decide(REQUEST)
    assert written._rules == {}  # type: ignore[attr-defined]
    bad = dict(REQUEST, args={})  # the refund rules fail to read args.amount
    errors = ev.decide(bad).errors
    assert ev.decide(bad) == reference.decide(bad) and errors
    decoded = [written[i].name for i in written._rules]  # type: ignore[attr-defined]
    assert decoded and len(decoded) < len(written)
    assert all(any(name in e for e in errors) for name in decoded)


def test_no_code_is_generated_after_a_bundle_is_loaded(tmp_path, monkeypatch):
    ev = load_bundle_evaluator(_spec_bundle(tmp_path))

    def generate(*args, **kwargs):
        raise AssertionError("code generated after load")

    monkeypatch.setattr(evaluator, "generate_leaf", generate)
    for tool in ev.leaves:
        ev.decide(dict(REQUEST, tool=tool))


def test_rules_of_one_form_share_their_example(tmp_path):
    """Rules that differ only in their literals are stored as one form and their constants."""
    text = "\n".join(["tool t { args { n: number } }"] +
                     [f"permit p{i} on t when args.n <= {i}" for i in range(5)]) + "\n"
    policy, _ = check_text(text)
    assert policy is not None
    path = tmp_path / "p.agpb"
    write_bundle(policy_to_ir(policy), path)
    first = json.loads(path.read_bytes().split(b"\n")[1])
    assert len(first["forms"]) == 1
    assert [state[1] for state in first["rules"]["state"]] == [[i] for i in range(5)]
    program = read_bundle(path)
    assert program.compiled is not None
    assert {id(r.form.example) for r in program.compiled if r.form} == \
        {id(program.compiled[0].form.example)}  # type: ignore[union-attr]
    ev = load_bundle_evaluator(path)
    assert ev.decide({"agent": {"id": "a"}, "tool": "t", "args": {"n": 3}}).rules == \
        ["p3", "p4"]


def _edit(path: Path, edit) -> None:
    header, body = path.read_bytes().split(b"\n", 1)
    header, body = edit(json.loads(header), body)
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)


@pytest.mark.parametrize("damage, message", [
    (lambda h, b: (h, b[:len(b) // 2]), "modified or corrupted"),  # truncated
    (lambda h, b: (h, b.replace(b"refund_small", b"refund_smalL", 1)), "modified or corrupted"),
    (lambda h, b: (dict(h, sha256="0" * 64), b), "modified or corrupted"),
    (lambda h, b: (dict(h, version=2), b), "format 2"),
    (lambda h, b: (dict(h, version=3), b), "format 3"),  # rules by row, before columns
    (lambda h, b: (dict(h, version=FORMAT_VERSION + 1), b), f"format {FORMAT_VERSION + 1}"),
    (lambda h, b: (dict(h, policy="sha256:" + "0" * 64), b), "does not match its header"),
])
def test_a_damaged_bundle_is_refused(tmp_path, damage, message):
    path = _spec_bundle(tmp_path)
    _edit(path, damage)
    with pytest.raises(BundleError, match=message):
        agp.load_bundle(path)
    result = CliRunner().invoke(main, ["compile", "--check-bundle", str(path)])
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("column, value", [
    ("name", ["x"]),  # one value for many rules
    ("effect", "permit"),  # not a column
    ("span", [0, 1]),  # not three integers per rule
    ("state", None),
])
def test_a_bundle_with_a_broken_column_is_refused(tmp_path, column, value):
    """The rules after the passes are stored in columns (format 4): a column of another length
    or kind, its hash recomputed as an editor would, is refused with a message, not loaded."""
    path = _spec_bundle(tmp_path)

    def edit(header, body):
        first, rest = body.split(b"\n", 1)
        data = json.loads(first)
        data["rules"][column] = value
        body = json.dumps(data).encode() + b"\n" + rest
        return dict(header, sha256=hashlib.sha256(body).hexdigest()), body

    _edit(path, edit)
    with pytest.raises(BundleError, match=r"malformed bundle \(expected .*column"):
        agp.load_bundle(path)


def test_loading_works_out_no_policy_position(tmp_path, monkeypatch):
    """Loading works out no line or column of the policy: the text that linecache shows for
    generated code and the line maps are made when first read (a traceback, `locate`, `agp
    compile --emit python`), and then name the same positions as ever."""
    path = _spec_bundle(tmp_path)
    real = Source.position

    def position(self, offset):
        raise AssertionError("a policy position was worked out at load")

    monkeypatch.setattr(Source, "position", position)
    ev = load_bundle_evaluator(path)
    monkeypatch.setattr(Source, "position", real)
    compiled = agp.load(SPEC).evaluator
    assert ev.decide(REQUEST) == compiled.decide(REQUEST)
    filename = ev.leaves[REQUEST["tool"]].fn_for(None).__code__.co_filename
    text = "".join(linecache.getlines(filename))
    spans = ev.ctx.line_maps[filename]
    assert spans and all(f"at {str(s)!r}" in text for s in spans.values())
    assert all(ev.locate(filename, line) == s for line, s in spans.items())
    assert _leaf_spans(ev) == _leaf_spans(compiled)


def test_tools_declared_alike_share_their_sets(tmp_path):
    """Tools that declare the same intents and classes share one set of each, and so do their
    leaves (each set was one more object for the collector to scan after loading): the
    decisions are those of `agp.load`."""
    text = "intent call\ndataclass public\n" + "".join(
        f"tool t{i} {{ intent call  data public }}\npermit p{i} on t{i}\n" for i in range(20))
    policy, _ = check_text(text)
    assert policy is not None
    path = tmp_path / "p.agpb"
    write_bundle(policy_to_ir(policy), path)
    bundled, compiled = load_bundle_evaluator(path), compile_policy(policy)
    for ev in (bundled, compiled):
        leaves = [ev.leaves[f"t{i}"] for i in range(20)]
        assert len({id(leaf.intents0) for leaf in leaves}) == 1
        assert len({id(leaf.data0) for leaf in leaves}) == 1
        assert leaves[0].intents0 == {"call"} and leaves[0].data0 == {"public"}
    assert len({id(t.intents) for t in bundled.policy.tools}) == 1
    for i in range(20):
        request = {"agent": {"id": "a"}, "tool": f"t{i}", "intent": ["call"]}
        assert bundled.decide(request) == compiled.decide(request)
        assert bundled.decide(request).decision == "allow"

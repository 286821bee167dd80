"""Only agp.PolicyError ever escapes agp.load, whatever the text (STYLE.md habit 8)."""

from importlib import resources

import lark
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from support import SPEC

import agp

VOCABULARY = ["pii", "public", "read", "egress", "bot", "ticket", "crm", "lookup", "x", "amount"]


def _grammar_strategy():
    grammar = resources.files("agp.grammar").joinpath("agp.lark").read_text(encoding="utf-8")
    parser = lark.Lark(grammar, parser="lalr", lexer="basic", start="item")
    # Every token is followed by a space so that generated items mostly lex as intended.
    explicit = {t.name: st.just(t.pattern.value + " ") for t in parser.terminals
                if t.pattern.type == "str"}
    explicit.update(
        NAME=st.sampled_from(VOCABULARY).map(lambda s: s + " "),
        STRING=st.sampled_from(['"x" ', '"spiffe://a/*" ', '"a\\"b" ']),
        NUMBER=st.sampled_from(["0 ", "100 ", "0.5 "]),
        DURATION=st.sampled_from(["5m ", "1h30m ", "30s "]),
        BAD_NUMBER=st.just("10min "),
        WS=st.just(" "),
        COMMENT=st.just("# c\n"),
    )
    return from_lark(parser, start="item", explicit=explicit)


ITEMS = _grammar_strategy()
PRELUDE = "import std.intents\ndataclass public\ndataclass pii > public\n"


def _load_text(tmp_path_factory, text: str):
    path = tmp_path_factory.mktemp("p") / "p.agp"
    path.write_text(text, encoding="utf-8")
    try:
        engine = agp.load(path)
    except agp.PolicyError as exc:
        assert exc.diagnostics, "a PolicyError carries its diagnostics"
        assert all(d.span.line >= 1 and d.span.column >= 1 for d in exc.diagnostics)
        return None
    return engine


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(ITEMS, min_size=1, max_size=6))
def test_generated_policies_load_or_raise_policy_error(tmp_path_factory, items):
    engine = _load_text(tmp_path_factory, PRELUDE + "\n".join(items))
    if engine is not None:
        d = engine.decide({"agent": {"id": "a"}, "tool": "crm.lookup"})
        assert d.decision in ("allow", "deny", "ask")


SPEC_TEXT = (SPEC / "declarations.agp").read_text() + (SPEC / "rules.agp").read_text()


@st.composite
def mutations(draw):
    text = SPEC_TEXT
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["delete", "insert", "duplicate"]))
        if kind == "delete":
            end = min(len(text), pos + draw(st.integers(1, 12)))
            text = text[:pos] + text[end:]
        elif kind == "insert":
            piece = draw(st.sampled_from(list("{}()[]\",.*?#<>=!-+:\x00\n") +
                                         ["when", "and", "ttl", "10min", "\udcff", "é"]))
            text = text[:pos] + piece + text[pos:]
        else:
            end = min(len(text), pos + draw(st.integers(1, 40)))
            text = text[:pos] + text[pos:end] + text[pos:]
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutations())
def test_mutated_spec_policy_loads_or_raises_policy_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("m") / "m.agp"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    try:
        engine = agp.load(path)
    except agp.PolicyError as exc:
        assert exc.diagnostics and all(d.span.line >= 1 for d in exc.diagnostics)
    else:
        # A mutation that still loads must still decide, never raise.
        assert engine.decide({"agent": {"id": "a"}, "tool": "t"}).decision in ("allow", "deny",
                                                                                "ask")


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\xff\xfe", b"permit r\n\xc3(", b"#" * 5000,
                                  b"(" * 3000, b"permit r when " + b"(" * 3000 + b"true" + b")" * 3000,
                                  b"permit r when " + b"not " * 5000 + b"true"])
def test_hostile_bytes(tmp_path, data):
    path = tmp_path / "h.agp"
    path.write_bytes(data)
    try:
        engine = agp.load(path)
    except agp.PolicyError as exc:
        assert exc.diagnostics
    else:
        assert engine.decide({"agent": {"id": "a"}, "tool": "t"}).decision in ("allow", "deny")

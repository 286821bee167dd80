"""The language's fixed vocabulary (agp.syntax.names) is defined once and means the same
everywhere: to the checker, to both evaluators and in messages."""

from __future__ import annotations

import ast as pyast

import pytest
from support import ROOT

from agp.check import types as T
from agp.loader import check_sources
from agp.source import Source
from agp.syntax.names import KIND_WORDS, ROOTS, with_article
from agp.syntax.parser import RESERVED

VOCABULARY = ("ROOTS", "KIND_WORDS")


def test_the_checker_types_every_name_of_a_condition():
    assert list(T.root_types()) == list(ROOTS)


def test_the_vocabulary_is_defined_only_in_agp_syntax_names():
    defined = []
    for folder in ("engine", "lsp", "stdlib"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in pyast.parse(path.read_text(encoding="utf-8")).body:
                targets = node.targets if isinstance(node, pyast.Assign) else \
                    [node.target] if isinstance(node, pyast.AnnAssign) else []
                defined += [(str(path.relative_to(ROOT)), t.id) for t in targets
                            if isinstance(t, pyast.Name) and t.id in VOCABULARY]
    assert defined == [("engine/syntax/names.py", "ROOTS"), ("engine/syntax/names.py", "KIND_WORDS")]


# The others (`tool`, `args`, ...) are also reserved words: declaring them is a syntax error.
@pytest.mark.parametrize("name", [n for n in ROOTS if n not in RESERVED])
def test_a_name_of_conditions_cannot_be_declared(name):
    policy, diagnostics = check_sources([Source("p.agp", f"intent {name}\n")])
    assert policy is None
    assert [(d.code, d.message) for d in diagnostics] == [
        ("reserved-name", f"`{name}` is a condition name and cannot be declared")]


def test_messages_name_kinds_with_their_article():
    _, diagnostics = check_sources([Source("p.agp", "intent pay\nagent pay \"x/*\"\n")])
    assert {d.message for d in diagnostics} == {
        f"`pay` is declared twice (first as {with_article(KIND_WORDS['intent'])})",
        f"`pay` is declared twice (again as {with_article(KIND_WORDS['agent'])})"}
    assert with_article("intent") == "an intent" and with_article("data class") == "a data class"

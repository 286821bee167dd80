"""Every consumer of expressions has a case for every form of expression (agp.syntax.visit).

A new form of expression is one node in agp.syntax.ast (and in `ast.EXPR_FORMS`) plus one
`visit_<Form>` case in each `ExprVisitor` of the product. `test_every_consumer_has_a_case_for_
every_form` then names each consumer still missing the case. A visitor that defines
`generic_visit` says it only cares about some forms (it is not held to the others).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import pytest

from agp.source import Source, Span
from agp.syntax import ast, visit
from agp.syntax.parser import parse
from agp.syntax.visit import ExprVisitor, MissingCase, children, expr_fields, missing_cases, walk

# The product's packages: installed from engine/, lsp/ and stdlib/, so each is walked on its own.
PACKAGES = ("agp", "agp.lsp", "agp.stdlib")


def consumers() -> list[type[ExprVisitor]]:
    """Every subclass of ExprVisitor in the product (the checker, the reference evaluator, the
    compiler, the formatter, the language server...), at any depth."""
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            if not module.name.endswith(".__main__"):  # `python -m agp.lsp` starts the server
                importlib.import_module(module.name)
    found, todo = [], list(ExprVisitor.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("agp.") and cls.__module__ != visit.__name__:
            found.append(cls)  # not a test's, nor the example in visit's docstring
    return found


def covers_every_form(cls: type[ExprVisitor]) -> bool:
    """Whether the visitor means to cover every form: it keeps the generic_visit that raises."""
    return cls.generic_visit is ExprVisitor.generic_visit


def incomplete() -> dict[str, list[str]]:
    """Each consumer meant to cover every form, with the forms it has no case for."""
    return {f"{c.__module__}.{c.__qualname__}": missing_cases(c)
            for c in consumers() if covers_every_form(c) and missing_cases(c)}


def test_every_consumer_has_a_case_for_every_form():
    assert incomplete() == {}


def test_the_consumers_are_found():
    # The check above must not pass for want of consumers: the reference evaluator, the
    # checker's types and the formatter are among them, and the compiler and the language
    # server have theirs.
    full = [c for c in consumers() if covers_every_form(c)]
    assert {"agp.interp._Value", "agp.check.exprs._Types", "agp.syntax.format._Precedence",
            "agp.syntax.format._Text", "agp.syntax.format._Layout"} <= \
        {f"{c.__module__}.{c.__qualname__}" for c in full}
    assert {c.__module__.split(".")[1] for c in full} >= {"compile", "lsp"}


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    """A form of expression that does not exist (yet)."""

    name: ast.Name
    span: Span


def test_a_new_form_is_named_missing_in_every_consumer(monkeypatch):
    full = {f"{c.__module__}.{c.__qualname__}" for c in consumers() if covers_every_form(c)}
    monkeypatch.setattr(ast, "EXPR_FORMS", (*ast.EXPR_FORMS, Session))
    assert incomplete() == {name: ["Session"] for name in full}


def test_a_visitor_without_a_case_says_which():
    class Partial(ExprVisitor):
        def visit_Literal(self, e: ast.Literal) -> object:
            return e.value

    assert "NameRef" in missing_cases(Partial) and "Literal" not in missing_cases(Partial)
    rule = parse(Source("x.agp", "forbid r when x")).items[0]
    with pytest.raises(MissingCase, match="Partial has no case for NameRef"):
        Partial().visit(rule.when)


EXPRESSION = ('forbid r when any(x in args.l: x.a > -1 and lower(x.b) in ["a", "b"]) '
              "or not (task has id) or agent is bot")


def test_walk_visits_every_node_parents_first_in_source_order():
    rule = parse(Source("x.agp", EXPRESSION)).items[0]
    nodes = list(walk(rule.when))
    assert nodes[0] is rule.when
    names = [n.name for n in nodes if isinstance(n, ast.NameRef)]
    assert names == ["args", "x", "x", "task", "agent"]
    # Every node once, whatever its form: its children are exactly the expressions in its fields.
    for node in nodes:
        inside = [v for f in dataclasses.fields(node) for v in _values(getattr(node, f.name))
                  if isinstance(v, ast.EXPR_FORMS)]
        assert list(children(node)) == inside


@dataclasses.dataclass(frozen=True, slots=True)
class Filtered:
    """A form with optional and repeated subexpressions, as a quantifier with a filter has."""

    var: ast.Name
    seqs: tuple[ast.Expr, ...]
    cond: ast.Expr | None
    body: ast.Expr
    span: Span


def test_the_fields_that_hold_expressions_are_read_from_the_annotations():
    assert expr_fields(Filtered) == ("seqs", "cond", "body")
    assert expr_fields(ast.Quant) == ("seq", "filter", "body")
    assert expr_fields(ast.Literal) == ()  # its value is a plain value


def test_each_case_dispatches_like_visit():
    class Forms(ExprVisitor):
        def generic_visit(self, e: ast.Expr, *args: object) -> str:
            return type(e).__name__

    rule = parse(Source("x.agp", EXPRESSION)).items[0]
    cases = Forms().cases()
    for node in walk(rule.when):
        assert cases[type(node)](node) == Forms().visit(node) == type(node).__name__


def _values(value: object) -> tuple[object, ...]:
    return value if isinstance(value, tuple) else (value,)

"""One way to walk expressions: a visitor with one method per form of `ast.Expr`.

Every consumer of expressions (the checker's types, the reference evaluator, the compiler's IR
builder, the formatter, the language server's index) subclasses `ExprVisitor` and defines
`visit_<Form>` for every form in `ast.EXPR_FORMS`. Adding a form of expression is then: one node in
`agp.syntax.ast`, one case per consumer; `tests/test_visit.py` fails, naming the consumer and the
form, until every case is written. The dispatch is a dictionary lookup on the node's class, built
once per visitor class, with no chain of `isinstance` tests (jinja's `NodeVisitor`, sqlglot's
`walk`).

>>> from agp.source import Source
>>> from agp.syntax.parser import parse
>>> class Names(ExprVisitor):
...     def generic_visit(self, e, *args):
...         return [n for child in children(e) for n in self.visit(child)]
...     def visit_NameRef(self, e):
...         return [e.name]
>>> rule = parse(Source("x.agp", "forbid r when args.a > 1 and now < task.deadline")).items[0]
>>> Names().visit(rule.when)
['args', 'now', 'task']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from types import MethodType
from typing import Any, ClassVar, get_args, get_type_hints

from agp.syntax import ast


class MissingCase(TypeError):
    """A visitor met a form of expression it has no case for: a defect of agp, which
    `tests/test_visit.py` finds before it ships (never a user's mistake)."""


class ExprVisitor:
    """Dispatch on the form of an expression to `visit_<Form>(e, *args)`.

    A subclass that does not define a case gets `generic_visit`, which raises: a consumer that
    meant to cover every form says so by not defining `generic_visit` (the test of missing cases
    then holds it to that), and one that only cares about a few forms defines it.
    """

    _dispatch: ClassVar[dict[type, Callable[..., Any]]]  # form -> its case (or generic_visit)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._dispatch = {form: getattr(cls, f"visit_{form.__name__}", cls.generic_visit)
                         for form in ast.EXPR_FORMS}

    def visit(self, e: ast.Expr, *args: Any) -> Any:
        return self._dispatch[type(e)](self, e, *args)

    def cases(self) -> dict[type, Callable[..., Any]]:
        """Each form's case, bound to this visitor: `cases[type(e)](e, *args)` is
        `visit(e, *args)` without the call of `visit`. For a walk that is itself a hot loop (the
        reference evaluator visits every node of every condition it decides)."""
        return {form: MethodType(case, self) for form, case in self._dispatch.items()}

    def generic_visit(self, e: ast.Expr, *args: Any) -> Any:
        raise MissingCase(f"{type(self).__name__} has no case for {type(e).__name__}")


def missing_cases(visitor: type[ExprVisitor]) -> list[str]:
    """The forms of expression that `visitor` has no `visit_<Form>` method for."""
    return [form.__name__ for form in ast.EXPR_FORMS
            if not callable(getattr(visitor, f"visit_{form.__name__}", None))]


def children(e: ast.Expr) -> Iterator[ast.Expr]:
    """The direct subexpressions of `e`, in source order."""
    for name in _EXPR_FIELDS[type(e)]:
        value = getattr(e, name)
        if isinstance(value, tuple):
            yield from value
        elif value is not None:
            yield value


def _holds_expressions(hint: object) -> bool:
    """Whether a field's type is an expression, or made of some (`tuple[Expr, ...]`,
    `Expr | None`)."""
    return hint in ast.EXPR_FORMS or any(_holds_expressions(h) for h in get_args(hint))


def expr_fields(form: type[Any]) -> tuple[str, ...]:
    """The fields of a form of expression that hold expressions, read from its annotations."""
    hints = get_type_hints(form)
    return tuple(f.name for f in dataclasses.fields(form) if _holds_expressions(hints[f.name]))


# Read once, so that a walk reads only the fields that hold expressions.
_EXPR_FIELDS = {form: expr_fields(form) for form in ast.EXPR_FORMS}


def walk(e: ast.Expr) -> Iterator[ast.Expr]:
    """`e` and every expression inside it, parents before children (iterative: no recursion)."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(list(children(node))))

"""Diagnostics are data: collected by every stage, rendered once at the end."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from agp.source import Span


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Related:
    span: Span
    message: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    severity: Severity
    span: Span
    message: str
    hint: str | None = None
    related: tuple[Related, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def headline(self) -> str:
        """`file:line:col: error[CODE]: message`, the first line of the rendering."""
        return f"{self.span}: {self.severity.value}[{self.code}]: {self.message}"

    def sort_key(self) -> tuple[str, int, str]:
        return (self.span.source.name, self.span.start, self.code)


def error(code: str, span: Span, message: str, hint: str | None = None,
          related: tuple[Related, ...] = ()) -> Diagnostic:
    return Diagnostic(code, Severity.ERROR, span, message, hint, related)


def warning(code: str, span: Span, message: str, hint: str | None = None,
            related: tuple[Related, ...] = ()) -> Diagnostic:
    return Diagnostic(code, Severity.WARNING, span, message, hint, related)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, if one is close enough."""
    import difflib

    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _excerpt(span: Span) -> list[str]:
    line, col = span.source.position(span.start)
    end_line, end_col = span.source.position(max(span.end, span.start))
    text = span.source.line_text(line).expandtabs(1)
    width = (end_col - col) if end_line == line else (len(text) - col + 1)
    gutter = " " * len(str(line))
    return [
        f"{gutter} |",
        f"{line} | {text}",
        f"{gutter} | {' ' * (col - 1)}{'^' * max(width, 1)}",
    ]


def render(diagnostic: Diagnostic) -> str:
    """Render one diagnostic with its source line and a caret underline.

    The underline covers exactly the span (to the end of the line for a span over several lines).
    """
    lines = [diagnostic.headline(), *_excerpt(diagnostic.span)]
    for rel in diagnostic.related:
        lines.append(f"note: {rel.message} at {rel.span}")
    if diagnostic.hint:
        lines.append(f"  = help: {diagnostic.hint}")
    return "\n".join(lines)


def render_all(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n\n".join(render(d) for d in sorted(diagnostics, key=Diagnostic.sort_key))

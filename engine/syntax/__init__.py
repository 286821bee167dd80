"""Source text to AST. The Lark tree never leaves this package."""

from agp.syntax.parser import ParsedFile, parse

__all__ = ["ParsedFile", "parse"]

"""`agp import mcp-tools`: `tool` declarations from an MCP server's `tools/list` result.

Each tool becomes `tool NAME { args { ... } }`, its description the `##` doc comment, with a
comment on the declaration asking the author for its intents and data classes (nothing in a
tools list says what a tool does, only what it takes). The text is put through the formatter,
so it is canonical (`agp fmt --check` passes) by construction.

>>> print(declarations([{"name": "get_weather", "description": "Weather.\\rBy city.",
...                      "inputSchema": {"type": "object", "properties": {
...                          "city": {"type": "string"}, "days": {"type": ["integer", "null"]}},
...                          "required": ["city"]}}]), end="")
# Tool declarations imported from an MCP server's tools/list by `agp import mcp-tools`.
# Each needs its intents (and the data classes it touches): see the comment on it.
<BLANKLINE>
## Weather.
## By city.
tool get_weather {  # to do: intents and data classes
  args { city: string, days?: number }
}
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from agp.syntax.format import format_text
from agp.syntax.parser import RESERVED

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TODO = "to do: intents and data classes"
_TYPES = {"string": "string", "number": "number", "integer": "number", "boolean": "bool",
          "array": "list"}


class ToolsError(ValueError):
    """A tools/list result that cannot be read; the message says where and why."""


def tools_of(value: Any, where: str) -> list[dict[str, Any]]:
    """The tools of a saved result: `{"tools": [...]}`, a whole JSON-RPC response, or a list
    of pages (each either of those)."""
    pages = value if isinstance(value, list) else [value]
    tools: list[dict[str, Any]] = []
    for number, page in enumerate(pages, 1):
        at = where if not isinstance(value, list) else f"{where}: page {number}"
        if isinstance(page, dict) and "jsonrpc" in page:
            if "error" in page:
                raise ToolsError(f"{at}: the server answered an error: "
                                 f"{_message(page['error'])}")
            page = page.get("result")
        if not isinstance(page, dict) or not isinstance(page.get("tools"), list):
            raise ToolsError(f"{at}: expected a tools/list result, an object with a "
                             "\"tools\" list")
        for index, tool in enumerate(page["tools"]):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) \
                    or not tool["name"]:
                raise ToolsError(f"{at}: tools[{index}] is not a tool with a name")
            tools.append(tool)
    return tools


def _message(error: Any) -> str:
    return str(error.get("message")) if isinstance(error, dict) else str(error)


def declarations(tools: list[dict[str, Any]]) -> str:
    """The .agp text declaring `tools` (canonical, as `agp fmt` writes it).

    Raises ToolsError for a tool listed twice (its declarations would clash)."""
    parts = ["# Tool declarations imported from an MCP server's tools/list by "
             "`agp import mcp-tools`.\n# Each needs its intents (and the data classes it "
             "touches): see the comment on it.\n"]
    seen: set[str] = set()
    for tool in tools:
        name = tool["name"]
        if name in seen:
            raise ToolsError(f"tool {name!r} is listed twice")
        seen.add(name)
        parts.append(_declaration(tool))
    return format_text("\n".join(parts))


def _declaration(tool: dict[str, Any]) -> str:
    doc = "".join(f"{doc_line(line)}\n" for line in _lines(tool.get("description")))
    head = f"{doc}tool {pattern(tool['name'])} {{"
    args, why = _args(tool.get("inputSchema"))
    if args is None:
        return f"{head}}}  # {TODO}; no args schema: {why}\n"
    return f"{head}  # {TODO}\n  {args}\n}}\n"


def _lines(description: Any) -> list[str]:
    """The lines of a description, split at every line end (str.splitlines splits at each one
    the lexer knows: \\n, \\r, U+2028, U+2029 and the rest)."""
    if not isinstance(description, str) or not description.strip():
        return []
    return description.splitlines()


def doc_line(line: str) -> str:
    """`## ` and the line without its control characters (a doc comment can hold no policy).

    >>> doc_line("a\\tb\\x00c ")
    '## abc'
    """
    text = "".join(c for c in line if unicodedata.category(c) != "Cc").rstrip()
    return f"## {text}" if text else "##"


def pattern(name: str) -> str:
    """The tool's name as a pattern: bare when every segment is a plain identifier, else quoted.

    >>> pattern("github.search"), pattern("in.box"), pattern("github/create-issue")
    ('github.search', '"in.box"', '"github/create-issue"')
    """
    if all(IDENTIFIER.fullmatch(s) and s not in RESERVED for s in name.split(".")):
        return name
    return quote(name)


def quote(text: str) -> str:
    """A string literal of the language holding `text` exactly (JSON's escapes; anything that
    could end a line or is invisible as \\uXXXX)."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") and ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _args(schema: Any) -> tuple[str | None, str]:
    """The `args { ... }` clause of an input schema, or None and the reason there is none."""
    if not isinstance(schema, dict):
        return "args {}", ""
    properties = schema.get("properties") or {}
    if not isinstance(properties, dict):
        return None, "its inputSchema's properties is not an object"
    required = schema.get("required")
    required = set(required) if isinstance(required, list) else set()
    for field in properties:
        # `true` and `false` are lexed as the literals, never as names: no field can have them.
        if not IDENTIFIER.fullmatch(field) or field in ("true", "false"):
            return None, f"property {quote(field)} is not an identifier"
    fields = [f"{field}{'' if field in required else '?'}: {json_type(spec)}"
              for field, spec in properties.items()]
    return "args { " + ", ".join(fields) + " }" if fields else "args {}", ""


def json_type(spec: Any) -> str:
    """The language's type for a JSON Schema property.

    >>> json_type({"type": ["string", "null"]}), json_type({"enum": [1, 2.5]})
    ('string', 'number')
    """
    if not isinstance(spec, dict):
        return "any"
    kind = spec.get("type")
    if isinstance(kind, list):
        others = [k for k in kind if k != "null"]
        kind = others[0] if len(others) == 1 else None
    if isinstance(kind, str):
        return _TYPES.get(kind, "any")
    enum = spec.get("enum")
    if isinstance(enum, list) and enum:
        if all(isinstance(v, str) for v in enum):
            return "string"
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in enum):
            return "number"
    return "any"


async def list_tools(command: list[str]) -> list[dict[str, Any]]:
    """The tools of the MCP server started by `command`, every page (following nextCursor)."""
    from mcp import ClientSession, StdioServerParameters, stdio_client
    from mcp_types import PaginatedRequestParams

    params = StdioServerParameters(command=command[0], args=command[1:])
    tools: list[dict[str, Any]] = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = await session.list_tools(
                params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            tools += [t.model_dump(mode="json", by_alias=True, exclude_none=True)
                      for t in page.tools]
            cursor = page.next_cursor
            if not cursor or cursor in seen:  # a server that loops on its cursor ends here
                return tools
            seen.add(cursor)

"""Strict JSON-RPC 2.0 framing for stdio MCP: one message a line, parsed before it is trusted.

A proxy that forwards bytes it has not understood can be made to forward something its peer
reads differently (a duplicate key, a batch, a member the proxy ignored). So every line is
parsed into exactly one of the SDK's JSON-RPC envelopes (`mcp_types.jsonrpc`), with the members
of that envelope and no others, and only the re-serialised envelope is ever sent on.

>>> parse_line(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}')
JSONRPCRequest(jsonrpc='2.0', id=1, method='ping', params=None)
>>> parse_line(b'{"jsonrpc": "2.0", "id": 1, "id": 2, "method": "ping"}')
Traceback (most recent call last):
...
agp.integrations.jsonrpc.MessageError: duplicate key 'id'
"""

from __future__ import annotations

from typing import Any

from mcp_types.jsonrpc import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
)
from pydantic import ValidationError

from agp import jsonio
from agp.jsonio import JSONInputError

# The longest line read from either side; a longer one is refused whole (not read into memory).
MAX_LINE = 64 * 1024 * 1024
# Integer ids stay within what every JSON implementation holds exactly (JavaScript's safe
# integers), so that no peer can round two ids into one; string ids are bounded likewise.
MAX_INT_ID = 2**53 - 1
MAX_STR_ID = 1024

_MEMBERS: tuple[tuple[str, type[JSONRPCMessage], frozenset[str]], ...] = (
    # (the member that identifies the envelope, its model, the members it may have)
    ("method", JSONRPCRequest, frozenset({"jsonrpc", "id", "method", "params"})),
    ("result", JSONRPCResponse, frozenset({"jsonrpc", "id", "result"})),
    ("error", JSONRPCError, frozenset({"jsonrpc", "id", "error"})),
)


class MessageError(ValueError):
    """A line that is not exactly one valid JSON-RPC message.

    `code` is the JSON-RPC error code to answer with; `id` the request's id when it could be
    read (so that the sender can match the error to its request), else None.
    """

    def __init__(self, message: str, code: int = INVALID_REQUEST, id: RequestId | None = None):
        super().__init__(message)
        self.code = code
        self.id = id


def loads(line: bytes) -> Any:
    """The JSON of a line, as strict as every JSON agp reads (agp.jsonio); MessageError."""
    try:
        return jsonio.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MessageError(f"invalid UTF-8 at byte {exc.start}", PARSE_ERROR) from None
    except JSONInputError as exc:
        raise MessageError(exc.message, PARSE_ERROR) from None


def parse_line(line: bytes) -> JSONRPCMessage:
    """The one JSON-RPC message a line holds; MessageError for anything else (batches too)."""
    value = loads(line)
    if isinstance(value, list):
        raise MessageError("JSON-RPC batches are not accepted")
    if not isinstance(value, dict):
        raise MessageError("a JSON-RPC message is a JSON object")
    return parse_message(value)


def parse_message(value: dict[str, Any]) -> JSONRPCMessage:
    """The envelope `value` is, checked member by member."""
    id = _valid_id(value.get("id"))
    for member, model, allowed in _MEMBERS:
        if member not in value:
            continue
        if model is JSONRPCRequest and "id" not in value:
            model, allowed = JSONRPCNotification, allowed - {"id"}
        extra = sorted(set(value) - allowed)
        if extra:
            raise MessageError(f"unexpected member(s) {', '.join(map(repr, extra))}", id=id)
        if "id" in value and value["id"] is not None and id is None:
            raise MessageError(
                f"an id is an integer of at most {MAX_INT_ID} in size or a string of at most "
                f"{MAX_STR_ID} characters")
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "message"
            raise MessageError(f"{where}: {first['msg']}", id=id) from None
    raise MessageError("a JSON-RPC message has a method, a result or an error", id=id)


def _valid_id(value: object) -> RequestId | None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT_ID:
        return value
    if isinstance(value, str) and len(value) <= MAX_STR_ID:
        return value
    return None


def dumps(message: JSONRPCMessage) -> bytes:
    """The line that carries `message` (members given as received; `"id": null` kept)."""
    return message.model_dump_json(exclude_unset=True).encode() + b"\n"


def error(id: RequestId | None, code: int, message: str, data: Any = None) -> JSONRPCError:
    err = ErrorData(code=code, message=message) if data is None else \
        ErrorData(code=code, message=message, data=data)
    return JSONRPCError(jsonrpc="2.0", id=id, error=err)

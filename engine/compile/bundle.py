"""Compiled bundles: the IR as JSON behind a one-line header with the format version and a
SHA-256 of the body.

The header is read and checked first; the body is hashed and compared before it is parsed, and
it is parsed as JSON, never unpickled or executed: a bundle carries data, and the code generator
lets its strings into Python only through `repr`. The hash detects corruption and edits made
without recomputing it; it is not a signature (sign or HMAC the file to authenticate its origin).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from agp import __version__

MAGIC = "agp-bundle"
FORMAT_VERSION = 1


class BundleError(Exception):
    """A bundle that cannot be loaded: another version, a tampered or corrupted file."""


def write_bundle(ir: dict, path) -> None:
    body = json.dumps(ir, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    data = body.encode("utf-8")
    header = {"format": MAGIC, "version": FORMAT_VERSION, "agp": __version__,
              "sha256": hashlib.sha256(data).hexdigest(), "policy": ir["hash"]}
    Path(path).write_bytes(json.dumps(header).encode() + b"\n" + data)


def read_bundle(path) -> dict:
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {name}: {exc.strerror or exc}") from None
    head, sep, body = raw.partition(b"\n")
    try:
        header = json.loads(head) if sep else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != MAGIC:
        raise BundleError(f"{name} is not an agp bundle (write one with `agp compile -o`)")
    if header.get("version") != FORMAT_VERSION or header.get("agp") != __version__:
        raise BundleError(
            f"{name} is a bundle of format {header.get('version')!r} written by agp "
            f"{header.get('agp')!r}; this is agp {__version__} (format {FORMAT_VERSION}): "
            "compile the policy again")
    if hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise BundleError(f"{name} has been modified or corrupted since it was written "
                          "(its content does not match its SHA-256)")
    try:
        ir = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{name}: unreadable bundle body: {exc}") from None
    if not isinstance(ir, dict) or ir.get("hash") != header.get("policy"):
        raise BundleError(f"{name}: the bundle body does not match its header")
    return ir

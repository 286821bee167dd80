"""The decision log: an audit trail of every decision, off the hot path.

Each line is a trace `request` event (docs/traces.md) that carries everything the decision
depended on: the request as decided (with its `now`), `task_ended` when the task had been ended,
and the decision made as its `expect`. So a log is a trace: `agp test -p POLICY LOG` reproduces
every decision, and `agp diff` shows what another policy set would decide. What only an auditor
reads (the policy hash, a digest of the request, the masked fields, a shadow decision) sits in
`audit`, which replay does not read. Anything else the log has to say is a `//` line, which
replay skips.

A background thread writes, rotates by size and, for shadow mode, evaluates a candidate policy
set; `record` only puts on a queue.
"""

from __future__ import annotations

import atexit
import copy
import hashlib
import json
import os
import queue
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeAlias

from agp.model import Decide, Decision, Request, RequestInput

MASK = "***"

# Called with the request, the enforced decision and the candidate's, where the two differ.
OnDifference: TypeAlias = Callable[[RequestInput, Decision, Decision], object]
# What the writer thread takes from the queue: a decision to write, a flush mark, or the end.
_Item: TypeAlias = "tuple[RequestInput, Decision, bool] | threading.Event | None"


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "total_seconds"):
        return value.total_seconds()
    return str(value)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def canonical(value: object) -> str:
    """Sorted, compact JSON; raises ValueError for what JSON cannot carry (NaN, infinities)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default,
                      ensure_ascii=False, allow_nan=False)


def digest(request: object) -> str:
    return "sha256:" + hashlib.sha256(canonical(request).encode()).hexdigest()


# Request fields that are credentials: never written to a decision log.
ALWAYS_MASKED = ("agent.svid",)


def mask_fields(request: dict[str, Any], paths: Iterable[str]
                ) -> tuple[dict[str, Any], list[str]]:
    """A copy of the request with each dotted path (`args.password`) replaced by `***`."""
    masked = copy.deepcopy(request)
    done = []
    for path in paths:
        *parents, last = path.split(".")
        node: object = masked
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[last] = MASK
            done.append(path)
    return masked, done


class DecisionLog:
    """Append decisions to `path` as JSON Lines from a background thread.

    `mask` lists dotted request paths to hide (`args.password`, `context.token`); `agent.svid`
    is always hidden: a JWT-SVID is a bearer credential, and a log must not hold one (the digest
    still identifies the request). With `include_request=False` only the digest of the request
    is kept. The file is rotated when it
    passes `max_bytes` (`path.1` ... `path.N`, `backups` of them). `close()` (also run at normal
    interpreter exit) writes every queued record before it returns: nothing queued is lost.
    """

    def __init__(self, path: str | os.PathLike[str], *, mask: Iterable[str] = (),
                 include_request: bool = True, max_bytes: int = 64 * 1024 * 1024,
                 backups: int = 5) -> None:
        self.path = Path(path)
        self.mask = tuple(dict.fromkeys((*ALWAYS_MASKED, *mask)))
        self.include_request = include_request
        self.max_bytes = max_bytes
        self.backups = backups
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._closed = False
        self._shadow: tuple[Decide, OnDifference] | None = None
        self._last = datetime.min.replace(tzinfo=timezone.utc)  # the last line's `ts`
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - owned by the writer
        self._thread = threading.Thread(target=self._run, name="agp-decision-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def shadow(self, decide: Decide, on_difference: OnDifference | None = None) -> None:
        """Shadow mode: also decide each logged request with `decide` (a candidate policy set),
        in the writer thread; where the two disagree, the line's `audit.shadow` holds the
        candidate's decision and `on_difference(request, enforced, candidate)` is called."""
        self._shadow = (decide, on_difference or (lambda *_: None))

    def record(self, request: RequestInput, decision: Decision, *,
               task_ended: bool = False) -> None:
        """Queue one decision. Never blocks on the disk and never raises."""
        if not self._closed:
            self._queue.put((request, decision, task_ended))

    def flush(self) -> None:
        """Wait until everything queued so far is written."""
        done = threading.Event()
        self._queue.put(done)
        if self._thread.is_alive():
            done.wait()

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._file.close()
        atexit.unregister(self.close)

    # ---- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                self._file.flush()
                item.set()
                continue
            try:
                self._write(*item)
            except Exception as exc:  # a log must never take the service down; say why
                try:
                    self._note(f"error: {exc!r}")
                except Exception:  # noqa: S110 - the disk itself fails: nothing left to tell
                    pass

    def _write(self, request: RequestInput, decision: Decision, task_ended: bool) -> None:
        # Write times never go backwards, even when the wall clock does: a replay refuses a
        # trace out of time order. (`now` in the request is the decision's own time.)
        self._last = max(_utcnow(), self._last)
        plain = request.model_dump(exclude_none=True) if isinstance(request, Request) \
            else request
        audit: dict[str, object] = {"policy": decision.policy}
        record: dict[str, object] = {"ts": _default(self._last), "event": "request"}
        try:
            audit["digest"] = digest(plain)
            if self.include_request:
                # (a caller may decide any object: it is refused, and logged as it came)
                shown, masked = mask_fields(plain, self.mask) if isinstance(plain, dict) \
                    else (plain, [])
                canonical(shown)  # a request that JSON cannot carry is not written (below)
                record["request"] = shown
                if masked:
                    audit["masked"] = masked
        except (ValueError, TypeError, RecursionError) as exc:
            # NaN, an integer too long for JSON, a value nested too deeply: the decision is
            # still logged, without the request, and says why.
            audit.setdefault("digest", None)
            audit["unlogged"] = f"the request cannot be written as JSON: {exc}"
        if task_ended:
            record["task_ended"] = True
        record["expect"] = {"decision": decision.decision, "ttl": decision.ttl,
                            "rules": list(decision.rules)}
        if decision.grant is not None:  # a bearer credential: the log keeps only its id
            from agp.identity.grants import grant_jti

            audit["grant"] = grant_jti(decision.grant)
        record["audit"] = audit
        candidate = None
        if self._shadow is not None:
            decide, on_difference = self._shadow
            candidate = decide(plain, task_ended=task_ended)
            if (candidate.decision, candidate.ttl, candidate.rules) != (
                    decision.decision, decision.ttl, decision.rules):
                audit["shadow"] = candidate.to_json()
            else:
                candidate = None
        self._append(record)
        if candidate is not None:
            on_difference(plain, decision, candidate)

    def _append(self, record: dict[str, object]) -> None:
        line = json.dumps(record, separators=(",", ":"), default=_default, ensure_ascii=False,
                          allow_nan=False) + "\n"
        self._write_line(line)

    def _note(self, text: str) -> None:
        """A line for people: a `//` comment, so that the log stays a trace."""
        self._write_line("// agp decision log: " + " ".join(text.split()) + "\n")

    def _write_line(self, line: str) -> None:
        if self._file.tell() + len(line.encode()) > self.max_bytes and self._file.tell() > 0:
            self._rotate()
        self._file.write(line)

    def _rotate(self) -> None:
        self._file.close()
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

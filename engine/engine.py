"""The embedding API: load a policy set once, decide many requests.

An Engine holds one evaluator for one checked policy set. `reload` swaps in a new evaluator with a
single assignment: a decision in flight finishes on the set it started with, and every decision
names the policy hash it was made with. Reloads are serialised by a lock; decisions
never take it.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from agp import interp
from agp.audit import DecisionLog, OnDifference
from agp.diagnostics import Diagnostic
from agp.identity import GrantError, IdentityCheck, grants_from, identity_check, unverified
from agp.loader import Paths, PolicyError, check_paths, load_policy, policy_files
from agp.model import Decide, Decision, Request, RequestInput
from agp.policy import Policy
from agp.store import Store, StoreUnavailable, open_store

if TYPE_CHECKING:
    from agp.identity.grants import Grants
    from agp.runtime import TaskRuntime

log = logging.getLogger("agp")


class Evaluator(Protocol):
    """What an Engine runs: the reference interpreter, or the compiled evaluator (agp.compile)."""

    @property
    def policy(self) -> Policy: ...

    def decide(self, request: RequestInput, *, task_ended: bool = False,
               store_unavailable: bool = False) -> Decision: ...

    def full_policy(self) -> Policy:
        """The whole Policy, rule syntax included (built on demand from a bundle)."""
        ...


class ReferenceEvaluator:
    """The reference interpreter (agp.interp) behind the evaluator interface."""

    def __init__(self, policy: Policy, identity: IdentityCheck = unverified) -> None:
        self.policy = policy
        self.identity = identity

    def decide(self, request: RequestInput, *, task_ended: bool = False,
               store_unavailable: bool = False) -> Decision:
        return interp.decide(self.policy, request, task_ended=task_ended,
                             store_unavailable=store_unavailable, identity=self.identity)

    def full_policy(self) -> Policy:
        return self.policy


def make_evaluator(policy: Policy, compiled: bool,
                   identity: IdentityCheck = unverified) -> Evaluator:
    """The one place that chooses how a checked policy set is evaluated. `identity` establishes
    each request's agent (agp.identity): `unverified` takes asserted ids and refuses SVIDs."""
    if not compiled:
        return ReferenceEvaluator(policy, identity)
    from agp.compile import compile_policy

    return compile_policy(policy, identity=identity)


# The grant step of a decision: (request, its allow, task_ended=) -> the allow with its grant,
# or the store failure's deny when the ledger cannot record it (agp.identity.grants.grant_for).
Grant: TypeAlias = Callable[..., Decision]


@dataclass(frozen=True, slots=True)
class Stages:
    """One policy set's `Engine.decide` taken apart: the pure decision, and its two side effects
    (minting a grant for an allow, writing the decision log).

    For a caller that may decide one call more than once and keep only one attempt: the task
    runtime decides again when another process's call joined the session first, and only the
    attempt that joins may mint and log (a grant or a log line for a call that never happened
    would be a lie). `engine.stages` is rebound with `decide` on a reload: read it once per call,
    so that every attempt of the call runs on one policy set.
    """

    decide: Decide  # the evaluator's own: no grant, no log
    grant: Grant | None  # None without an issuer key
    log: Callable[..., None] | None  # DecisionLog.record; None without a decision log

    def settle(self, request: Request, decision: Decision, *, task_ended: bool) -> Decision:
        """The decision handed out for `decision` of `request` (whose `now` is set): an allow
        gets its grant, minted and recorded in the ledger, or becomes the `store.unavailable`
        deny when the ledger cannot record it. Mints; does not log."""
        if self.grant is None or decision.decision != "allow":
            return decision
        return self.grant(request, decision, task_ended=task_ended)

    def record(self, request: Request, decision: Decision, *, task_ended: bool) -> None:
        """Log the decision handed out (once per call)."""
        if self.log is not None:
            self.log(request, decision, task_ended=task_ended)

    def finish(self, request: Request, decision: Decision, *, task_ended: bool) -> Decision:
        """`settle`, then `record`: the side effects of a call decided once."""
        decision = self.settle(request, decision, task_ended=task_ended)
        self.record(request, decision, task_ended=task_ended)
        return decision


class Engine:
    """A loaded policy set. `decide` is pure and safe to call from many threads at once.

    It runs the compiled evaluator (agp.compile, the default of `load`) or the reference
    evaluator (agp.interp, `load(..., compiled=False)`); the two agree.
    """

    def __init__(self, policy: Policy | None, *, compiled: bool = True, paths: Paths | None = None,
                 decision_log: DecisionLog | None = None,
                 evaluator: Evaluator | None = None, identity: IdentityCheck | None = None,
                 issuer_key: str | os.PathLike[str] | dict[str, Any] | None = None,
                 issuer: str | None = None, store: Store | str | None = None) -> None:
        self._policy = policy
        self._compiled = compiled
        self._paths = paths
        self._log = decision_log
        self._reload_lock = threading.Lock()
        self._watcher: Watcher | None = None
        # Task state and revocations (agp.store): a URL or a Store, else this engine's memory.
        self.store: Store = store if store is not None and not isinstance(store, str) \
            else open_store(store)
        # Identity (agp.identity.svid) with trust; grants (agp.identity.grants) with an issuer
        # key. Without them `decide` is the evaluator's own, as fast as ever.
        self._trusted = identity is not None
        self._identity: IdentityCheck = identity if identity is not None else unverified
        self._grants = grants_from(issuer_key, issuer, self.store)
        if evaluator is None:
            if policy is None:
                raise ValueError("an Engine needs a policy set or an evaluator")
            evaluator = make_evaluator(policy, compiled, self._identity)
        self._install(evaluator, policy)

    def _install(self, evaluator: Evaluator, policy: Policy | None) -> None:
        # `decide` is bound once per policy set, so that a decision costs no extra call layer;
        # a reload rebinds it with one assignment, and a decision in flight finishes on the
        # set it started with.
        self.evaluator = evaluator
        self._policy = policy
        pure: Decide = evaluator.decide
        decide = pure
        grant: Grant | None = None
        if self._grants is not None:  # a grant on every allow, logged with it
            from agp.identity.grants import grant_for, granting

            decide = granting(pure, self._grants, self._identity, verified_only=self._trusted)
            grant = functools.partial(grant_for, pure, self._grants, self._identity,
                                      verified_only=self._trusted)
        self.stages = Stages(pure, grant, None if self._log is None else self._log.record)
        self.decide = (  # type: ignore[method-assign]  # the method below only documents it
            decide if self._log is None else self._logged(decide, self._log))

    @staticmethod
    def _logged(evaluator_decide: Decide, decision_log: DecisionLog) -> Decide:
        record = decision_log.record

        def decide(request: RequestInput, *, task_ended: bool = False,
                   store_unavailable: bool = False) -> Decision:
            # Logged requests carry their decision time, so that a replay reproduces them.
            if isinstance(request, dict) and "now" not in request:
                now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
                request = {**request, "now": now.replace("+00:00", "Z")}
            elif isinstance(request, Request) and request.now is None:
                request = request.model_copy(update={"now": datetime.now(timezone.utc)})
            decision = evaluator_decide(request, task_ended=task_ended,
                                        store_unavailable=store_unavailable)
            record(request, decision, task_ended=task_ended)
            return decision

        return decide

    def decide(self, request: RequestInput, *, task_ended: bool = False,
               store_unavailable: bool = False) -> Decision:
        """Decide one request (a dict as in FORMATS.md, or a Request). Never raises on bad input."""
        return self.decide(request, task_ended=task_ended,  # pragma: no cover - bound in _install
                           store_unavailable=store_unavailable)

    @property
    def policy(self) -> Policy:
        if self._policy is None:  # a bundle: the full Policy (with rule ASTs) is built on demand
            self._policy = self.evaluator.full_policy()
        return self._policy

    @property
    def compiled(self) -> bool:
        return not isinstance(self.evaluator, ReferenceEvaluator)

    @property
    def policy_hash(self) -> str:
        return self.evaluator.policy.hash

    @property
    def grants(self) -> Grants:
        """The grants this engine signs (agp.identity.grants): verify, introspect, revoke."""
        if self._grants is None:
            raise ValueError("this engine has no issuer_key: it signs no grants")
        return self._grants

    def approve(self, request: RequestInput, decision: Decision, *, approver: str,
                now: datetime | str | None = None) -> str:
        """The grant for a call whose `ask` a human (`approver`) approved. The request is decided
        again (`decision` is not trusted); raises agp.GrantError `not-ask` unless that fresh
        decision is `ask`.

        A call of a task this engine's store keeps is decided again on the task's session as it
        stood before that call (the store's, not the request's: LANGUAGE.md §6), and once
        granted, its history item becomes `allow`."""
        from agp.identity.grants import approve

        kept = self._kept_call(request)
        token = approve(self.evaluator.decide, self.grants, self._identity,
                        request if kept is None else kept[1],
                        approver=approver, now=now, verified_only=self._trusted)
        if kept is not None:
            call = kept[1]
            self.tasks().approve(kept[0], call["tool"], call.get("args", {}))
        return token

    def _kept_call(self, request: RequestInput) -> tuple[str, dict[str, Any]] | None:
        """For a call of a task the store keeps: its id, and the request with the session the
        task had before its most recent `ask` of that tool and arguments. None otherwise."""
        from agp.model import RequestError, parse_request

        try:
            parsed = parse_request(request)
        except RequestError:
            return None  # refused as it stands, by `approve`
        task_id = parsed.task.id if parsed.task is not None else None
        if task_id is None:
            return None
        tasks = self.tasks()
        try:
            if not tasks.known(task_id):
                return None
            seen, history = tasks.session(task_id)
        except StoreUnavailable as exc:
            raise GrantError("unavailable", f"the store cannot be read ({exc})") from None
        asked = [i for i, h in enumerate(history)
                 if h.decision == "ask" and h.tool == parsed.tool and h.args == parsed.args]
        before = history[:asked[-1]] if asked else history
        plain = parsed.model_dump(exclude_none=True)
        plain["task"]["seen"] = seen
        plain["task"]["history"] = [
            {"tool": h.tool, "intent": list(h.intent), "data": list(h.data), "args": h.args,
             "decision": h.decision, "at": h.at} for h in before]
        return task_id, plain

    def tasks(self) -> TaskRuntime:
        """A task runtime over this engine: start, delegate, decide and end task instances."""
        from agp.runtime import TaskRuntime

        return TaskRuntime(self)

    # ---- operations --------------------------------------------------------------------------

    def reload(self, paths: Paths | None = None) -> list[Diagnostic]:
        """Load the policy set again (or another one) and swap it in atomically.

        Raises PolicyError and keeps the current set serving when the new one has an error.
        Returns the new set's warnings.
        """
        with self._reload_lock:
            paths = paths if paths is not None else self._paths
            if paths is None:
                raise ValueError("this engine was not loaded from paths; pass the paths to reload")
            policy, diagnostics = check_paths(paths)
            if policy is None:
                raise PolicyError(diagnostics)
            self._install(make_evaluator(policy, self._compiled, self._identity), policy)
            self._paths = paths
            log.info("agp: reloaded policy set %s", policy.hash)
            return diagnostics

    def watch(self, interval: float = 1.0, *,
              on_reload: Callable[[list[Diagnostic]], object] | None = None,
              on_error: Callable[[PolicyError], object] | None = None) -> Watcher:
        """Reload whenever a policy file changes (polling every `interval` seconds)."""
        if self._paths is None:
            raise ValueError("this engine was not loaded from paths: there is nothing to watch")
        if self._watcher is None:
            self._watcher = Watcher(self, interval, on_reload, on_error)
        return self._watcher

    def log_decisions(self, path: str | os.PathLike[str], **options: Any) -> DecisionLog:
        """Write every decision to a JSON Lines audit log (see agp.audit.DecisionLog)."""
        self._log = DecisionLog(path, **options)
        self._install(self.evaluator, self._policy)
        return self._log

    def shadow(self, paths: Paths, *, on_difference: OnDifference | None = None) -> Engine:
        """Decide every logged request also with the candidate set at `paths`, off the hot path,
        and log where it differs from the enforced decision. Needs `log_decisions` first."""
        if self._log is None:
            raise ValueError("shadow mode writes its differences to the decision log: "
                             "call log_decisions() first")
        # The candidate verifies identities as this engine does (it signs no grants).
        candidate = Engine(load_policy(paths), compiled=self._compiled, paths=paths,
                           identity=self._identity if self._trusted else None)
        self._log.shadow(candidate.decide, on_difference)
        return candidate

    def close(self) -> None:
        """Stop watching and flush the decision log."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self._log is not None:
            self._log.close()


def file_state(files: Iterable[str | os.PathLike[str]]) -> list[tuple[str, int, int]]:
    """Names, sizes and modification times: what changes when a file is edited, added or
    removed (the watchers compare two of these)."""
    state = []
    for f in files:
        try:
            st = Path(f).stat()
            state.append((str(f), st.st_size, st.st_mtime_ns))
        except OSError:
            state.append((str(f), -1, -1))
    return state


class Watcher:
    """Polls the policy files' names, sizes and modification times; reloads on a change."""

    def __init__(self, engine: Engine, interval: float,
                 on_reload: Callable[[list[Diagnostic]], object] | None,
                 on_error: Callable[[PolicyError], object] | None) -> None:
        self.engine = engine
        self.interval = interval
        self.on_reload = on_reload or (lambda diagnostics: None)
        self.on_error = on_error or (lambda exc: log.warning("agp: reload refused: %s", exc))
        self._stop = threading.Event()
        self._seen = self._snapshot()
        self._thread = threading.Thread(target=self._run, name="agp-watch", daemon=True)
        self._thread.start()

    def _snapshot(self) -> list[tuple[str, int, int]]:
        paths = self.engine._paths
        return file_state(policy_files(paths)[0]) if paths is not None else []

    def check_now(self) -> bool:
        """Reload if something changed since the last look; whether a reload was attempted."""
        current = self._snapshot()
        if current == self._seen:
            return False
        self._seen = current
        try:
            self.on_reload(self.engine.reload())
        except PolicyError as exc:
            self.on_error(exc)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check_now()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def load(paths: Paths, *, compiled: bool = True,
         decision_log: str | os.PathLike[str] | None = None,
         trust: str | os.PathLike[str] | dict[str, Any] | None = None,
         audience: str | None = None, require_identity: bool | None = None,
         leeway: float = 0, issuer_key: str | os.PathLike[str] | dict[str, Any] | None = None,
         issuer: str | None = None, store: str | Store | None = None) -> Engine:
    """Load, check and prepare a policy set (a file, a directory, or a list of them).

    Raises agp.PolicyError carrying every diagnostic when the set has an error. `compiled=False`
    selects the reference interpreter; `decision_log` (a path) logs every decision.
    `trust` (JWKS per trust domain) with `audience` verifies JWT-SVIDs, and requires them unless
    `require_identity=False`; `issuer_key` with `issuer` signs a grant on every allow
    (docs/identity.md). `store` (`"redis://host:port/db"`) keeps task state and revocations in
    Redis, shared by every process that points at it; the default is this engine's memory
    (docs/embedding.md). Raises ValueError for options that do not fit together.
    """
    identity = identity_check(trust, audience, require_identity, leeway)
    engine = Engine(load_policy(paths), compiled=compiled, paths=paths, identity=identity,
                    issuer_key=issuer_key, issuer=issuer, store=store)
    if decision_log is not None:
        engine.log_decisions(decision_log)
    return engine


def load_bundle(path: str | Path, *,
                trust: str | os.PathLike[str] | dict[str, Any] | None = None,
                audience: str | None = None, require_identity: bool | None = None,
                leeway: float = 0,
                issuer_key: str | os.PathLike[str] | dict[str, Any] | None = None,
                issuer: str | None = None, store: str | Store | None = None) -> Engine:
    """Load a bundle written by `agp compile -o`, without parsing or checking the policy again.

    `trust`, `audience`, `require_identity`, `leeway`, `issuer_key`, `issuer` and `store` mean
    what they mean for `load`. Raises agp.compile.BundleError for a bundle of another version,
    or a modified one; ValueError for options that do not fit together.
    """
    from agp.compile import load_bundle_evaluator

    # The options are checked before the bundle is read, as `load` checks them before parsing.
    identity = identity_check(trust, audience, require_identity, leeway)
    # The evaluator is built here (a bundle is not compiled by the Engine), so it gets the
    # verifier the Engine is given; `unverified` is the Engine's own default without trust.
    evaluator = load_bundle_evaluator(path, identity if identity is not None else unverified)
    return Engine(None, evaluator=evaluator, identity=identity, issuer_key=issuer_key,
                  issuer=issuer, store=store)

"""The embedding API: load a policy set once, decide many requests.

An Engine holds one evaluator for one checked policy set. `reload` swaps in a new evaluator with a
single assignment: a decision in flight finishes on the set it started with, and every decision
names the policy hash it was made with. Reloads are serialised by a lock; decisions
never take it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agp import interp
from agp.audit import DecisionLog, OnDifference
from agp.diagnostics import Diagnostic
from agp.loader import Paths, PolicyError, check_paths, load_policy, policy_files
from agp.model import Decide, Decision, Request, RequestInput
from agp.policy import Policy

if TYPE_CHECKING:
    from agp.runtime import TaskRuntime

log = logging.getLogger("agp")


class Evaluator(Protocol):
    """What an Engine runs: the reference interpreter, or the compiled evaluator (agp.compile)."""

    @property
    def policy(self) -> Policy: ...

    def decide(self, request: RequestInput, *, task_ended: bool = False) -> Decision: ...

    def full_policy(self) -> Policy:
        """The whole Policy, rule syntax included (built on demand from a bundle)."""
        ...


class ReferenceEvaluator:
    """The reference interpreter (agp.interp) behind the evaluator interface."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def decide(self, request: RequestInput, *, task_ended: bool = False) -> Decision:
        return interp.decide(self.policy, request, task_ended=task_ended)

    def full_policy(self) -> Policy:
        return self.policy


def make_evaluator(policy: Policy, compiled: bool) -> Evaluator:
    """The one place that chooses how a checked policy set is evaluated."""
    if not compiled:
        return ReferenceEvaluator(policy)
    from agp.compile import compile_policy

    return compile_policy(policy)


class Engine:
    """A loaded policy set. `decide` is pure and safe to call from many threads at once.

    It runs the compiled evaluator (agp.compile, the default of `load`) or the reference
    evaluator (agp.interp, `load(..., compiled=False)`); the two agree.
    """

    def __init__(self, policy: Policy | None, *, compiled: bool = True, paths: Paths | None = None,
                 decision_log: DecisionLog | None = None,
                 evaluator: Evaluator | None = None) -> None:
        self._policy = policy
        self._compiled = compiled
        self._paths = paths
        self._log = decision_log
        self._reload_lock = threading.Lock()
        self._watcher: Watcher | None = None
        if evaluator is None:
            if policy is None:
                raise ValueError("an Engine needs a policy set or an evaluator")
            evaluator = make_evaluator(policy, compiled)
        self._install(evaluator, policy)

    def _install(self, evaluator: Evaluator, policy: Policy | None) -> None:
        # `decide` is bound once per policy set, so that a decision costs no extra call layer;
        # a reload rebinds it with one assignment, and a decision in flight finishes on the
        # set it started with.
        self.evaluator = evaluator
        self._policy = policy
        self.decide = (  # type: ignore[method-assign]  # the method below only documents it
            evaluator.decide if self._log is None else self._logged(evaluator, self._log))

    @staticmethod
    def _logged(evaluator: Evaluator, decision_log: DecisionLog) -> Decide:
        record = decision_log.record

        def decide(request: RequestInput, *, task_ended: bool = False) -> Decision:
            # Logged requests carry their decision time, so that a replay reproduces them.
            if isinstance(request, dict) and "now" not in request:
                now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
                request = {**request, "now": now.replace("+00:00", "Z")}
            elif isinstance(request, Request) and request.now is None:
                request = request.model_copy(update={"now": datetime.now(timezone.utc)})
            decision = evaluator.decide(request, task_ended=task_ended)
            record(request, decision, task_ended=task_ended)
            return decision

        return decide

    def decide(self, request: RequestInput, *, task_ended: bool = False) -> Decision:
        """Decide one request (a dict as in FORMATS.md, or a Request). Never raises on bad input."""
        return self.decide(request, task_ended=task_ended)  # pragma: no cover - bound in _install

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
            self._install(make_evaluator(policy, self._compiled), policy)
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
        candidate = load(paths, compiled=self._compiled)
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
         decision_log: str | os.PathLike[str] | None = None) -> Engine:
    """Load, check and prepare a policy set (a file, a directory, or a list of them).

    Raises agp.PolicyError carrying every diagnostic when the set has an error. `compiled=False`
    selects the reference interpreter; `decision_log` (a path) logs every decision.
    """
    engine = Engine(load_policy(paths), compiled=compiled, paths=paths)
    if decision_log is not None:
        engine.log_decisions(decision_log)
    return engine


def load_bundle(path: str | Path) -> Engine:
    """Load a bundle written by `agp compile -o`, without parsing or checking the policy again.

    Raises agp.compile.BundleError for a bundle of another version, or a modified one.
    """
    from agp.compile import load_bundle_evaluator

    return Engine(None, evaluator=load_bundle_evaluator(path))

"""The service's Prometheus metrics, in a registry of its own (two services in one process, as
in the tests, never share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from agp.model import Decision

# Decisions take microseconds; a store round trip, milliseconds. The buckets cover both.
_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 1.0)


class Metrics:
    """What `/metrics` shows. `decided` is on the hot path: label children are looked up once."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter("agp_decisions", "Decisions, by outcome.", ["decision"],
                                 registry=self.registry)
        self.rules = Counter("agp_decision_rules", "Decisions, by deciding rule or envelope code.",
                             ["rule", "decision"], registry=self.registry)
        self.seconds = Histogram("agp_decision_seconds", "Time to decide one request.",
                                 buckets=_BUCKETS, registry=self.registry)
        self.reloads = Counter("agp_reloads", "Policy reloads, by result.", ["result"],
                               registry=self.registry)
        self.store_errors = Counter("agp_store_errors", "Operations refused because the task "
                                    "store could not be reached.", registry=self.registry)
        # Every outcome shows from the start, at 0, so that a rate query never finds nothing.
        self._by_decision = {d: self.decisions.labels(d) for d in ("allow", "deny", "ask")}
        for result in ("ok", "error"):
            self.reloads.labels(result)

    def decided(self, decision: Decision, seconds: float) -> None:
        self._by_decision[decision.decision].inc()
        for rule in decision.rules:
            self.rules.labels(rule, decision.decision).inc()
        self.seconds.observe(seconds)
        if "store.unavailable" in decision.rules:
            self.store_errors.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

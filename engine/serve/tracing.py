"""OpenTelemetry spans for decisions, when the standard environment asks for them.

With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, every decision
is a span `agp.decide` exported over OTLP/HTTP; the exporter reads the other `OTEL_*` variables
itself (headers, timeout, service name). Without them nothing is imported and a decision costs
nothing more. The SDK is the optional extra `agp[otel]`: asked for and missing, it is a warning
at start, never a failure to serve.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

log = logging.getLogger("agp.serve")

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class Tracing:
    """A tracer whose spans are batched and exported; `close` flushes what is pending."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("agp.serve")

    def close(self) -> None:
        self.provider.shutdown()


def tracing_from_env() -> Tracing | None:
    if not any(os.environ.get(name) for name in _ENDPOINTS):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("agp serve: OTEL_EXPORTER_OTLP_ENDPOINT is set, but the OpenTelemetry SDK "
                    "is not installed (pip install 'agp[otel]'): no spans are exported")
        return None
    resource = Resource.create({} if os.environ.get("OTEL_SERVICE_NAME")
                               else {SERVICE_NAME: "agp-serve"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracing(provider)

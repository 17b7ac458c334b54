"""OpenTelemetry tracing: one trace per job, from ``POST /v1/jobs`` through ``/start``, the queue
and the worker, to each webhook attempt. W3C trace context travels in the job (the database row
and the queue message) and on outgoing webhooks (``traceparent``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

__all__ = ["carrier", "configure_tracing", "parent", "record_span", "span", "tracer"]

_lock = threading.Lock()
tracer = trace.get_tracer("pixelflow")


def configure_tracing(exporter: str, service: str, *, custom: SpanExporter | None = None) -> TracerProvider | None:
    """Install the process's tracer provider once. ``none`` installs nothing (no overhead)."""
    if exporter == "none" and custom is None:
        return None
    with _lock:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            return current
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        if custom is not None:
            provider.add_span_processor(BatchSpanProcessor(custom, schedule_delay_millis=100))
        elif exporter == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif exporter == "otlp":
            # Endpoint, headers and TLS come from the standard OTEL_EXPORTER_OTLP_* variables.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        return provider


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``, ``tracestate``)."""
    out: dict[str, str] = {}
    propagate.inject(out)
    return out


def parent(headers: Mapping[str, str] | None) -> otel_context.Context | None:
    return propagate.extract(dict(headers)) if headers else None


@contextmanager
def span(name: str, *, context: otel_context.Context | None = None, **attributes: Any) -> Iterator[trace.Span]:
    with tracer.start_as_current_span(name, context=context, attributes=_clean(attributes)) as s:
        yield s


def record_span(name: str, start_ns: int, end_ns: int, attributes: dict[str, Any]) -> None:
    """A span timed elsewhere (the engine's child process), as a child of the current span."""
    tracer.start_span(name, attributes=_clean(attributes), start_time=start_ns).end(end_time=end_ns)


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        k.replace("_", "."): v if isinstance(v, str | int | float | bool) else str(v)
        for k, v in attributes.items()
        if v is not None
    }

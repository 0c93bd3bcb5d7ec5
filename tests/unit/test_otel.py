"""OpenTelemetry: an attempt's end becomes a span from its start to its end, named after
its task, with what identifies the attempt; a failed one has an error status."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from waypost.runtime.process.telemetry import otel_sink

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)


def test_an_attempt_is_a_span() -> None:
    base = {"run": "r1", "step": "charge", "task": "shop:charge", "attempt": 2,
            "idempotency_key": "r1/charge", "input_checksum": "sha256:ab", "at": 1000.5}
    otel_sink({**base, "event": "attempt_started"})  # the end makes the span
    otel_sink({**base, "event": "attempt_ended", "duration": 0.25, "outcome": "succeeded",
               "error": None})
    otel_sink({**base, "event": "attempt_ended", "duration": 1.0, "outcome": "failed",
               "error": "ValueError"})
    ok, failed = EXPORTER.get_finished_spans()[-2:]
    assert ok.name == "shop:charge" and ok.end_time - ok.start_time == 250_000_000
    assert ok.end_time == 1000_500_000_000
    assert dict(ok.attributes or {})["waypost.idempotency_key"] == "r1/charge"
    assert ok.status.status_code != StatusCode.ERROR
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.status.description == "ValueError"

// OpenTelemetry for FCALLs: a call hook that records one client span per call through the
// tracer the user passes. Only types come from @opentelemetry/api (an optional peer
// dependency), so the package does not load it unless the user does.
import type { Attributes, Tracer } from '@opentelemetry/api';
import type { CallEvent } from './client.js';

// Values of the API's SpanKind.CLIENT and SpanStatusCode.ERROR, which are stable.
const SPAN_KIND_CLIENT = 2;
const STATUS_ERROR = 2;

/** Returns an `onCall` hook that records each FCALL as a span named `FCALL <function>`. */
export function openTelemetryHook(tracer: Tracer): (event: CallEvent) => void {
  return (event) => {
    const attributes: Attributes = {
      'db.system': 'redis',
      'db.operation.name': 'FCALL',
      'ff.function': event.fn,
      'ff.outcome': event.outcome,
    };
    if (event.code) attributes['ff.error_code'] = event.code;
    if (event.error) attributes['ff.error_class'] = event.error.errorClass;
    const span = tracer.startSpan(`FCALL ${event.fn}`, { kind: SPAN_KIND_CLIENT, startTime: event.startTime, attributes });
    if (event.outcome !== 'ok') span.setStatus({ code: STATUS_ERROR, message: event.code ?? event.error?.message ?? event.outcome });
    span.end(event.startTime + event.durationMs);
  };
}

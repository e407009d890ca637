/**
 * Observability: the levelled logger and the event interface (logins,
 * refusals, streams, bytes, paths, resumptions) that logs, metrics and tests
 * subscribe to.
 *
 * @module
 */
export { createLogger, describeError, type Logger, type LogLevel, silentLogger } from "./log.ts";
export {
  type EventAddr,
  EventHub,
  EventLog,
  type EventOf,
  type EventSink,
  type EventStreamOptions,
  NO_EVENTS,
  type Observer,
  type RefusalCause,
  type RefusalReason,
  type TunnelEvent,
  type TunnelEventInit,
  type TunnelEventType,
} from "./events.ts";
export { logEvents, type LogSide } from "./log_events.ts";
export { THROTTLE_INTERVAL_MS, ThrottledLog, type ThrottleOptions } from "./throttle.ts";

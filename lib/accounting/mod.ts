/**
 * Accounting: counters per user (bytes each way, streams opened and
 * refused, logins, kicks, live sessions, quota-period bytes) and for the
 * server, kept by an {@linkcode AccountingStore} — in memory, in a JSON
 * state file that survives restarts ({@linkcode FileStore}), or later in a
 * store shared by a fleet — and filled from a server's events by the
 * {@linkcode Accountant}. The Prometheus text format for `/metrics`.
 *
 * @module
 */
export {
  type AccountingBatch,
  type AccountingSnapshot,
  applyBatch,
  emptyBatch,
  emptySnapshot,
  type ServerCounters,
  type ServerDelta,
  type UsagePeriod,
  USER_COUNTER_NAMES,
  type UserCounters,
  type UserDelta,
} from "./counters.ts";
export { type AccountingStore, MemoryStore } from "./store.ts";
export { FileStore, type FileStoreOptions, StateFileError } from "./file_store.ts";
export { Accountant, type AccountantOptions, type SessionBytes } from "./accountant.ts";
export { type MetricsInput, serverMetrics, type StoreState } from "./metrics.ts";
export {
  escapeLabelValue,
  EXPOSITION_CONTENT_TYPE,
  type MetricFamily,
  renderExposition,
  type Sample,
} from "./prometheus.ts";

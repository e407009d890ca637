/**
 * The server's metrics as Prometheus families (`nitrosocks_…`): the
 * accounting counters per user (label `user`) and for the server, live
 * sessions and streams, and a few process facts. Pure: the admin listener
 * gathers the inputs and renders the result with `renderExposition`.
 *
 * @module
 */
import type { AccountingSnapshot } from "./counters.ts";
import type { MetricFamily, Sample } from "./prometheus.ts";

/** What the metrics are made of. */
export interface MetricsInput {
  snapshot: AccountingSnapshot;
  /** Users in users.yml now. */
  users: number;
  /** Streams open now over every live session. */
  streamsLive: number;
  /** When the server started and the time now (ms since the epoch). */
  startedAt: number;
  now: number;
  /** The process's memory (bytes). */
  memory: { rss: number; heapUsed: number };
  /** The shared store of a fleet (`store:` in server.yml), when there is one. */
  store?: StoreState;
}

/** A fleet's shared store as the metrics show it. */
export interface StoreState {
  /** Which store (`redis`). */
  kind: string;
  /** True while it answers. */
  up: boolean;
  /** Times it went down since the server started. */
  outages: number;
  /** Hellos refused as probes because the store could not be asked (fail closed). */
  unchecked: number;
}

function storeMetrics(st: StoreState | undefined): MetricFamily[] {
  if (st === undefined) return [];
  const labels = { store: st.kind };
  return [
    {
      name: "nitrosocks_store_up",
      help: "1 while the fleet's shared store answers, 0 while it does not.",
      type: "gauge",
      samples: [{ labels, value: st.up ? 1 : 0 }],
    },
    {
      name: "nitrosocks_store_outages_total",
      help: "Times the connection to the shared store went down.",
      type: "counter",
      samples: [{ labels, value: st.outages }],
    },
    {
      name: "nitrosocks_store_unchecked_hellos_total",
      help: "Hellos refused as probes because the shared store could not check their nonce.",
      type: "counter",
      samples: [{ labels, value: st.unchecked }],
    },
  ];
}

/** Refusal reasons always reported (0 until one happens). */
const REFUSAL_REASONS = [
  "probe",
  "auth_failed",
  "rate_limited",
  "timeout",
  "evicted",
  "full",
  "cookie",
  "closed",
  "error",
];

function keyed(map: ReadonlyMap<string, number>, label: string, always: string[]): Sample[] {
  const keys = new Set([...always, ...map.keys()]);
  return [...keys].sort().map((k) => ({ labels: { [label]: k }, value: map.get(k) ?? 0 }));
}

/**
 * The metric families for one scrape.
 *
 * @example
 * ```ts
 * import { emptySnapshot } from "./counters.ts";
 * import { serverMetrics } from "./metrics.ts";
 * import { renderExposition } from "./prometheus.ts";
 * const text = renderExposition(serverMetrics({
 *   snapshot: emptySnapshot(), users: 0, streamsLive: 0, startedAt: 0, now: 1000,
 *   memory: { rss: 1, heapUsed: 1 },
 * }));
 * console.log(text.includes("nitrosocks_uptime_seconds 1")); // true
 * ```
 */
export function serverMetrics(input: MetricsInput): MetricFamily[] {
  const { server } = input.snapshot;
  const users = [...input.snapshot.users].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const perUser = (
    pick: (u: (typeof users)[number][1]) => [Record<string, string>, number][],
  ): Sample[] =>
    users.flatMap(([user, u]) =>
      pick(u).map(([labels, value]) => ({ labels: { user, ...labels }, value }))
    );
  return [
    {
      name: "nitrosocks_user_bytes_total",
      help: 'Tunnel bytes per user: direction "in" from the user\'s clients, "out" to them.',
      type: "counter",
      samples: perUser((u) => [
        [{ direction: "in" }, u.bytesIn],
        [{ direction: "out" }, u.bytesOut],
      ]),
    },
    {
      name: "nitrosocks_user_streams_total",
      help: "Streams per user, by result: opened (connected to the target) or refused.",
      type: "counter",
      samples: perUser((u) => [
        [{ result: "opened" }, u.streamsOpened],
        [{ result: "refused" }, u.streamsRefused],
      ]),
    },
    {
      name: "nitrosocks_user_logins_total",
      help: "Logins per user, by result: ok, resumed (a session resumed) or failed.",
      type: "counter",
      samples: perUser((u) => [
        [{ result: "ok" }, u.loginsOk],
        [{ result: "resumed" }, u.loginsResumed],
        [{ result: "failed" }, u.loginsFailed],
      ]),
    },
    {
      name: "nitrosocks_user_kicks_total",
      help: "Times an operator ended the user's sessions.",
      type: "counter",
      samples: perUser((u) => [[{}, u.kicks]]),
    },
    {
      name: "nitrosocks_sessions_live",
      help: "Sessions (tunnels) live now, per user.",
      type: "gauge",
      samples: perUser((u) => [[{}, u.sessionsLive]]),
    },
    {
      name: "nitrosocks_user_period_bytes",
      help: "Tunnel bytes per user since the start of the user's quota period.",
      type: "gauge",
      samples: perUser((u) =>
        u.period === undefined ? [] : [
          [{ direction: "in" }, u.period.bytesIn],
          [{ direction: "out" }, u.period.bytesOut],
        ]
      ),
    },
    {
      name: "nitrosocks_bytes_total",
      help: 'Tunnel bytes of every user: direction "in" from clients, "out" to them.',
      type: "counter",
      samples: [
        { labels: { direction: "in" }, value: server.bytesIn },
        { labels: { direction: "out" }, value: server.bytesOut },
      ],
    },
    {
      name: "nitrosocks_streams_total",
      help: "Streams of every user, by result: opened or refused.",
      type: "counter",
      samples: [
        { labels: { result: "opened" }, value: server.streamsOpened },
        { labels: { result: "refused" }, value: server.streamsRefused },
      ],
    },
    {
      name: "nitrosocks_logins_total",
      help: "Logins, by result: ok, resumed or failed (failed includes unknown user names).",
      type: "counter",
      samples: [
        { labels: { result: "ok" }, value: server.loginsOk },
        { labels: { result: "resumed" }, value: server.loginsResumed },
        { labels: { result: "failed" }, value: server.loginsFailed },
      ],
    },
    {
      name: "nitrosocks_sessions_started_total",
      help: "Sessions (tunnels) started.",
      type: "counter",
      samples: [{ value: server.sessionsStarted }],
    },
    {
      name: "nitrosocks_refusals_total",
      help: "Connections turned away before a session, by reason.",
      type: "counter",
      samples: keyed(server.refusals, "reason", REFUSAL_REASONS),
    },
    {
      name: "nitrosocks_limit_hits_total",
      help: "Times a limit refused or ended something, by limit.",
      type: "counter",
      samples: keyed(server.limits, "limit", []),
    },
    {
      name: "nitrosocks_kicks_total",
      help: "Times an operator ended a user's sessions.",
      type: "counter",
      samples: [{ value: server.kicks }],
    },
    {
      name: "nitrosocks_streams_live",
      help: "Streams open now over every session.",
      type: "gauge",
      samples: [{ value: input.streamsLive }],
    },
    {
      name: "nitrosocks_users",
      help: "Users in users.yml.",
      type: "gauge",
      samples: [{ value: input.users }],
    },
    {
      name: "nitrosocks_uptime_seconds",
      help: "Seconds since the server started.",
      type: "gauge",
      samples: [{ value: Math.max(0, (input.now - input.startedAt) / 1000) }],
    },
    {
      name: "nitrosocks_start_time_seconds",
      help: "When the server started, in seconds since the Unix epoch.",
      type: "gauge",
      samples: [{ value: input.startedAt / 1000 }],
    },
    {
      name: "nitrosocks_process_resident_memory_bytes",
      help: "Resident memory of the server process.",
      type: "gauge",
      samples: [{ value: input.memory.rss }],
    },
    {
      name: "nitrosocks_process_heap_used_bytes",
      help: "JavaScript heap in use in the server process.",
      type: "gauge",
      samples: [{ value: input.memory.heapUsed }],
    },
    ...storeMetrics(input.store),
  ];
}

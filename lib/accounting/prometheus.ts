/**
 * The Prometheus text exposition format (version 0.0.4): metric families
 * with `# HELP` and `# TYPE` lines and their samples, label values escaped.
 * Pure: builds the text, serves nothing.
 *
 * @module
 */

/** The media type of the text format. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** One sample: its labels and value. */
export interface Sample {
  labels?: Readonly<Record<string, string>>;
  value: number;
}

/** A metric family: a name, its help text, its type and its samples. */
export interface MetricFamily {
  /** `[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total`. */
  name: string;
  help: string;
  type: "counter" | "gauge";
  samples: readonly Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escapes a label value: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

/** Escapes help text: backslash and line feed. */
export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === "\n" ? "\\n" : "\\\\"));
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/**
 * Renders metric families as exposition text. A family without samples is
 * left out. Throws `RangeError` for a name that is not a valid metric or
 * label name, or a counter whose name does not end in `_total`.
 *
 * @example
 * ```ts
 * import { renderExposition } from "./prometheus.ts";
 * const text = renderExposition([{
 *   name: "demo_bytes_total", help: "Bytes.", type: "counter",
 *   samples: [{ labels: { user: 'a"b' }, value: 3 }],
 * }]);
 * console.log(text.split("\n")[2]); // demo_bytes_total{user="a\"b"} 3
 * ```
 */
export function renderExposition(families: readonly MetricFamily[]): string {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new RangeError(`Invalid metric name "${f.name}"`);
    if (f.type === "counter" && !f.name.endsWith("_total")) {
      throw new RangeError(`Invalid counter name "${f.name}": counters end in _total`);
    }
    if (seen.has(f.name)) throw new RangeError(`Metric "${f.name}" is listed twice`);
    seen.add(f.name);
    if (f.samples.length === 0) continue;
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels ?? {});
      let line = f.name;
      if (labels.length > 0) {
        const parts = labels.map(([k, v]) => {
          if (!LABEL_NAME.test(k) || k.startsWith("__")) {
            throw new RangeError(`Invalid label name "${k}" in metric "${f.name}"`);
          }
          return `${k}="${escapeLabelValue(v)}"`;
        });
        line += `{${parts.join(",")}}`;
      }
      out.push(`${line} ${formatValue(s.value)}`);
    }
  }
  return out.length === 0 ? "" : out.join("\n") + "\n";
}

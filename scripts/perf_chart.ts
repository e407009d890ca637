/**
 * Draws the side-by-side peer harness's TSV (the files in docs/bench/, columns
 * `ts peer metric value unit n note`) as one SVG: four panels of
 * horizontal bars (bulk MB/s, 64-stream MB/s, new-connection latency ms,
 * CPU s/GiB), one bar per peer, NitroSocks highlighted. No dependencies.
 *
 * Usage: deno run --allow-read --allow-write=docs scripts/perf_chart.ts TSV [OUT.svg]
 *
 * @module
 */

/** One panel of the chart. */
interface Panel {
  metric: string;
  title: string;
  unit: string;
  better: "higher" | "lower";
}

const PANELS: Panel[] = [
  { metric: "bulk_MBps_median", title: "Bulk download (1 GiB)", unit: "MB/s", better: "higher" },
  { metric: "concurrent_MBps", title: "64 parallel downloads", unit: "MB/s", better: "higher" },
  {
    metric: "latency_ms_median",
    title: "New connection latency (median)",
    unit: "ms",
    better: "lower",
  },
  { metric: "cpu_s_per_GiB_bulk", title: "Proxy CPU per GiB (bulk)", unit: "s", better: "lower" },
];

/** Parses the TSV into peer → metric → value, peers in first-seen order. */
export function parseTsv(text: string): { peers: string[]; values: Map<string, number> } {
  const peers: string[] = [];
  const values = new Map<string, number>();
  for (const line of text.split("\n").slice(1)) {
    const [, peer, metric, value] = line.split("\t");
    if (peer === undefined || metric === undefined || value === undefined) continue;
    const v = Number(value);
    if (!Number.isFinite(v)) continue;
    if (!peers.includes(peer)) peers.push(peer);
    values.set(`${peer}\t${metric}`, v);
  }
  return { peers, values };
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Renders the SVG text. */
export function renderChart(tsv: string, title: string): string {
  const { peers, values } = parseTsv(tsv);
  const rowH = 18;
  const labelW = 130;
  const barW = 230;
  const panelW = labelW + barW + 70;
  const panelH = 30 + peers.length * rowH + 10;
  const cols = 2;
  const width = cols * panelW + 20;
  const height = 40 + Math.ceil(PANELS.length / cols) * panelH + 20;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  PANELS.forEach((p, i) => {
    const x0 = 10 + (i % cols) * panelW;
    const y0 = 40 + Math.floor(i / cols) * panelH;
    const rows = peers.map((peer) => ({ peer, v: values.get(`${peer}\t${p.metric}`) }));
    const max = Math.max(...rows.map((r) => r.v ?? 0), 1e-9);
    out.push(
      `<text x="${x0}" y="${y0 + 12}" font-weight="bold">${
        esc(p.title)
      } (${p.unit}, ${p.better} is better)</text>`,
    );
    rows.forEach((r, j) => {
      const y = y0 + 22 + j * rowH;
      const ours = r.peer.startsWith("nitrosocks");
      out.push(
        `<text x="${x0 + labelW - 6}" y="${y + 12}" text-anchor="end"${
          ours ? ' font-weight="bold"' : ""
        }>${esc(r.peer)}</text>`,
      );
      if (r.v === undefined) {
        out.push(`<text x="${x0 + labelW + 4}" y="${y + 12}" fill="#888">n/a</text>`);
        return;
      }
      const w = Math.max(1, Math.round((r.v / max) * barW));
      out.push(
        `<rect x="${x0 + labelW}" y="${y + 2}" width="${w}" height="${rowH - 5}" fill="${
          ours ? "#d9480f" : "#4a6fa5"
        }"/>`,
        `<text x="${x0 + labelW + w + 4}" y="${y + 12}">${r.v}</text>`,
      );
    });
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

async function main(): Promise<number> {
  const [input, output] = Deno.args;
  if (input === undefined || Deno.args.length > 2) {
    console.error("Usage: deno run --allow-read --allow-write scripts/perf_chart.ts TSV [OUT.svg]");
    return 2;
  }
  const tsv = await Deno.readTextFile(input);
  const stamp = tsv.split("\n")[1]?.split("\t")[0] ?? "";
  const svg = renderChart(tsv, `SOCKS5 loopback benchmark ${stamp} (2 vCPU, one run)`);
  if (output === undefined) console.log(svg);
  else await Deno.writeTextFile(output, svg);
  return 0;
}

if (import.meta.main) Deno.exit(await main());

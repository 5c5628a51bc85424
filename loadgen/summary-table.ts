/** The summary table GenAI-Perf prints at the end of a run (box drawing as rich renders it). */

import { CSV_REQUEST_ROWS, metricLabel, STREAMING_ONLY } from "../results/genai-perf/artifacts.ts";
import type { GenAiPerfStats } from "../results/genai-perf/metrics.ts";
import { pyFormatComma2 } from "../results/genai-perf/pyformat.ts";
import type { MetricStats } from "../results/genai-perf/stats.ts";

const COLS = ["avg", "min", "max", "p99", "p90", "p75"] as const;

export function summaryTable(
  stats: GenAiPerfStats,
  streaming: boolean,
  title = "NVIDIA GenAI-Perf | LLM Metrics",
): string {
  const rows: string[][] = [];
  for (const name of CSV_REQUEST_ROWS) {
    const m = stats[name] as MetricStats | undefined;
    if (!m || (!streaming && STREAMING_ONLY.has(name))) continue;
    rows.push([
      metricLabel(name, m.unit),
      ...COLS.map((c) => (m[c] === undefined ? "N/A" : pyFormatComma2(m[c]!))),
    ]);
  }
  const sys: [string, number | undefined][] = [
    ["Output Token Throughput (tokens/sec)", stats.output_token_throughput.avg],
    ["Request Throughput (per sec)", stats.request_throughput.avg],
    ["Request Goodput (per sec)", stats.request_goodput?.avg],
    ["Request Count (count)", stats.request_count.avg],
  ];
  for (const [label, v] of sys) {
    if (v === undefined) continue;
    rows.push([label, pyFormatComma2(v), "N/A", "N/A", "N/A", "N/A", "N/A"]);
  }
  const header = ["Statistic", ...COLS];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (l: string, m: string, r: string, fill: string) =>
    `${l}${widths.map((w) => fill.repeat(w + 2)).join(m)}${r}`;
  const cells = (r: string[], sep: string) =>
    `${sep}${r.map((c, i) => ` ${i === 0 ? c.padStart(widths[0]!) : c.padStart(widths[i]!)} `).join(sep)}${sep}`;
  const total = widths.reduce((a, b) => a + b + 3, 1);
  const pad = Math.max(0, Math.floor((total - title.length) / 2));
  return [
    `${" ".repeat(pad)}${title}`,
    line("┏", "┳", "┓", "━"),
    cells(header, "┃"),
    line("┡", "╇", "┩", "━"),
    ...rows.map((r) => cells(r, "│")),
    line("└", "┴", "┘", "─"),
  ].join("\n");
}

/**
 * The metric rows every report shows, in order, and how each side's value and the matching
 * MetricDelta are found. Deltas are matched by `metric` key (aliases accepted); deltas with other
 * keys are still shown, after these rows, so nothing the comparison computed is dropped.
 */
import type { ComparisonRow, MetricDelta, SideSummary } from "../compare-types.ts";
import { fmtDeltaCi, fmtNum, fmtPct } from "./format.ts";

export interface MetricRowDef {
  /** Canonical MetricDelta.metric key. */
  key: string;
  aliases: string[];
  label: string;
  unit: string;
  value(s: SideSummary): number | undefined;
  format(v: number | undefined): string;
}

const q = (name: string, field: "ttftMs" | "itlMs" | "e2eMs", label: string): MetricRowDef[] =>
  (["mean", "p50", "p90", "p99"] as const).map((p) => ({
    key: `${name}_${p}_ms`,
    aliases: [`${name}_${p}`, `${field}.${p}`],
    label: `${label} ${p}`,
    unit: "ms",
    value: (s) => s[field]?.[p],
    format: fmtNum,
  }));

export const METRIC_ROWS: readonly MetricRowDef[] = [
  ...q("ttft", "ttftMs", "TTFT"),
  ...q("itl", "itlMs", "ITL"),
  ...q("e2e", "e2eMs", "E2E latency"),
  {
    key: "request_throughput",
    aliases: ["achieved_rps", "request_throughput_rps", "achievedRps"],
    label: "request throughput",
    unit: "req/s",
    value: (s) => s.achievedRps,
    format: fmtNum,
  },
  {
    key: "output_token_throughput",
    aliases: ["output_tokens_per_sec", "token_throughput", "outputTokensPerSec"],
    label: "output token throughput",
    unit: "tok/s",
    value: (s) => s.outputTokensPerSec,
    format: fmtNum,
  },
  {
    key: "goodput",
    aliases: ["goodput_rps", "goodputRps", "request_goodput"],
    label: "goodput (all SLOs met)",
    unit: "req/s",
    value: (s) => s.goodputRps,
    format: fmtNum,
  },
  {
    key: "error_rate",
    aliases: ["errorRate", "error_rate_pct"],
    label: "error rate",
    unit: "%",
    value: (s) => s.errorRate,
    format: (v) => fmtPct(v, 2),
  },
];

export function findDelta(row: ComparisonRow, def: MetricRowDef): MetricDelta | undefined {
  return row.deltas.find((d) => d.metric === def.key || def.aliases.includes(d.metric));
}

/** Deltas whose metric key is none of METRIC_ROWS (shown after them). */
export function extraDeltas(row: ComparisonRow): MetricDelta[] {
  const known = new Set(METRIC_ROWS.flatMap((d) => [d.key, ...d.aliases]));
  return row.deltas.filter((d) => !known.has(d.metric));
}

export function bothValid(row: ComparisonRow): boolean {
  return row.a.valid && row.b.valid;
}

/** One rendered table line, shared by Markdown and HTML. */
export interface RenderedMetric {
  label: string;
  unit: string;
  a: string;
  b: string;
  delta: string;
  verdict: string;
  method?: string;
}

export const INVALID_CELL = "INVALID";

export function renderMetricRows(row: ComparisonRow): RenderedMetric[] {
  const valid = bothValid(row);
  const cell = (s: SideSummary, text: string) => (s.valid ? text : INVALID_CELL);
  const out: RenderedMetric[] = [];
  for (const def of METRIC_ROWS) {
    const va = def.value(row.a);
    const vb = def.value(row.b);
    const d = findDelta(row, def);
    if (va === undefined && vb === undefined && !d) continue;
    out.push({
      label: def.label,
      unit: def.unit,
      a: cell(row.a, def.format(va)),
      b: cell(row.b, def.format(vb)),
      delta: !valid ? "not compared" : d ? fmtDeltaCi(d.deltaPct, d.ciLowPct, d.ciHighPct) : "—",
      verdict: !valid ? "—" : (d?.verdict ?? "—"),
      ...(d && valid ? { method: d.method } : {}),
    });
  }
  for (const d of extraDeltas(row)) {
    out.push({
      label: d.label,
      unit: d.unit,
      a: cell(row.a, fmtNum(d.a)),
      b: cell(row.b, fmtNum(d.b)),
      delta: valid ? fmtDeltaCi(d.deltaPct, d.ciLowPct, d.ciHighPct) : "not compared",
      verdict: valid ? d.verdict : "—",
      ...(valid ? { method: d.method } : {}),
    });
  }
  return out;
}

/** Server-side view lines: label, A, B. */
export function renderServerRows(row: ComparisonRow): { label: string; a: string; b: string }[] {
  const cell = (s: SideSummary, f: (s: SideSummary) => string) => (s.valid ? f(s) : INVALID_CELL);
  const share = (s: SideSummary) => {
    const e = Object.entries(s.server.replicaShare).sort(([x], [y]) =>
      x < y ? -1 : x > y ? 1 : 0,
    );
    return e.length ? e.map(([k, v]) => `${k} ${fmtPct(v)}`).join(", ") : "—";
  };
  const lines: { label: string; f: (s: SideSummary) => string }[] = [
    { label: "prefix-cache hit rate", f: (s) => fmtPct(s.server.prefixHitRate) },
    { label: "preemptions", f: (s) => fmtNum(s.server.preemptions) },
    { label: "KV cache usage mean", f: (s) => fmtPct(s.server.kvUsageMean) },
    { label: "KV cache usage max", f: (s) => fmtPct(s.server.kvUsageMax) },
    { label: "queue depth mean", f: (s) => fmtNum(s.server.queueDepthMean) },
    { label: "share of requests per replica", f: share },
  ];
  return lines.map((l) => ({ label: l.label, a: cell(row.a, l.f), b: cell(row.b, l.f) }));
}

/** `N requests (E errors), R repeats` for one side. */
export function sampleText(s: SideSummary): string {
  const rep = s.repeats > 1 ? `, ${s.repeats} repeats` : "";
  const n = (x: number) => x.toLocaleString("en-US");
  return `${n(s.requests)} requests (${n(s.errors)} failed)${rep}`;
}

/** Rate context line: requested (when a rate point) and achieved per side. */
export function rateText(row: ComparisonRow): string {
  const req = row.a.requestedRps ?? row.b.requestedRps;
  const reqText = req !== undefined ? `requested ${fmtNum(req)} req/s; ` : "";
  const ach = (s: SideSummary) => (s.valid ? `${fmtNum(s.achievedRps)} req/s` : "INVALID");
  return `${reqText}achieved: ${row.a.label} ${ach(row.a)}, ${row.b.label} ${ach(row.b)}`;
}

export function invalidLines(row: ComparisonRow): string[] {
  return [row.a, row.b]
    .filter((s) => !s.valid)
    .map(
      (s) =>
        `INVALID: load generator fell behind: ${s.invalidReason ?? "no reason recorded"} (${s.label}) — not a result`,
    );
}

export const ITL_DEFINITION =
  "ITL shown is GenAI-Perf's definition: (request latency − TTFT) / (output tokens − 1), per request — the same as vLLM's TPOT.";

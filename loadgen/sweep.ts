/**
 * Sweeps: one artifact folder per load point plus a summary CSV, and an automatic mode that
 * probes saturation (closed loop, doubling concurrency until throughput stops growing) and then
 * spreads open-loop rates from low load up to the saturated throughput.
 */
import { join } from "node:path";
import { writeFileAtomic } from "../lib/atomic.ts";
import { pyCsvRow, pyFormatComma2 } from "../results/genai-perf/pyformat.ts";
import type { LoadPoint } from "../stacks/plan-types.ts";
import { type LoadPointResult, type RunLoadPointOptions, runLoadPoint } from "./run-point.ts";

export interface ProbeSample {
  concurrency: number;
  /** Request throughput, req/s (0 when the probe failed). */
  throughput: number;
  errorRate: number;
}

export const SATURATION_GAIN = 0.1;
export const MAX_PROBE_CONCURRENCY = 1024;

/**
 * Next probe concurrency, or "saturated": doubling from 1 until a doubling gains < 10% throughput,
 * errors exceed 10%, or the cap is reached.
 */
export function nextProbe(history: readonly ProbeSample[]): number | "saturated" {
  const last = history[history.length - 1];
  if (!last) return 1;
  if (last.errorRate > 0.1) return "saturated";
  const prev = history[history.length - 2];
  if (prev && last.throughput < prev.throughput * (1 + SATURATION_GAIN)) return "saturated";
  const next = last.concurrency * 2;
  return next > MAX_PROBE_CONCURRENCY ? "saturated" : next;
}

/** Saturated throughput: the best probe. */
export function saturationThroughput(history: readonly ProbeSample[]): number {
  return history.reduce((a, s) => Math.max(a, s.throughput), 0);
}

/** n rates from 10% to 100% of the saturated throughput, evenly spaced, rounded to 3 digits. */
export function spreadRates(saturated: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const f = n === 1 ? 1 : 0.1 + (0.9 * i) / (n - 1);
    out.push(Math.max(0.001, Math.round(saturated * f * 1000) / 1000));
  }
  return [...new Set(out)];
}

export interface SweepRow {
  point: LoadPoint;
  result: LoadPointResult;
}

function stimulus(lp: LoadPoint): string {
  return lp.kind === "concurrency" ? String(lp.concurrency) : String(lp.requestRate);
}

/** Sweep summary CSV in the shape of `genai-perf analyze`'s export (one row per point). */
export function sweepSummaryCsv(rows: readonly SweepRow[]): string {
  const stimName = rows[0]?.point.kind === "request-rate" ? "Request Rate" : "Concurrency";
  let out = pyCsvRow([
    "Config Name",
    stimName,
    "p99 Time To First Token (ms)",
    "p99 Inter Token Latency (ms)",
    "p99 Request Latency (ms)",
    "Avg. Output Token Throughput (tokens/sec)",
    "Request Throughput (requests/sec)",
    "Request Count",
    "Errors",
    "Valid",
  ]);
  for (const { point, result } of rows) {
    const s = result.stats;
    const f = (v: number | undefined) => (v === undefined ? "N/A" : pyFormatComma2(v));
    out += pyCsvRow([
      result.runDir.split(/[\\/]/).pop() ?? "",
      stimulus(point),
      f(s?.time_to_first_token?.p99),
      f(s?.inter_token_latency?.p99),
      f(s?.request_latency.p99),
      f(s?.output_token_throughput.avg),
      f(s?.request_throughput.avg),
      String(result.requestCount),
      String(result.errorCount),
      result.valid ? "yes" : "no",
    ]);
  }
  return out;
}

export const SWEEP_SUMMARY_FILE = "analyze_export_genai_perf.csv";

export async function runSweep(
  base: Omit<RunLoadPointOptions, "loadPoint">,
  points: readonly LoadPoint[],
  onPoint?: (row: SweepRow) => void,
): Promise<SweepRow[]> {
  const rows: SweepRow[] = [];
  for (const point of points) {
    if (base.signal?.aborted) break;
    const result = await runLoadPoint({ ...base, loadPoint: point });
    const row = { point, result };
    rows.push(row);
    onPoint?.(row);
  }
  await writeFileAtomic(join(base.artifactDir, SWEEP_SUMMARY_FILE), sweepSummaryCsv(rows));
  return rows;
}

export async function runAutoSweep(
  base: Omit<RunLoadPointOptions, "loadPoint">,
  points: number,
  distribution: "constant" | "poisson" | "gamma",
  onPoint?: (row: SweepRow) => void,
): Promise<{ probes: ProbeSample[]; saturated: number; rows: SweepRow[] }> {
  const probes: ProbeSample[] = [];
  const probeDir = join(base.artifactDir, "auto_probe");
  for (;;) {
    const c = nextProbe(probes);
    if (c === "saturated" || base.signal?.aborted) break;
    const r = await runLoadPoint({
      ...base,
      artifactDir: probeDir,
      warmupRequests: Math.min(base.warmupRequests, c),
      loadPoint: { kind: "concurrency", concurrency: c },
    });
    probes.push({
      concurrency: c,
      throughput: r.stats?.request_throughput.avg ?? 0,
      errorRate: r.errorRate,
    });
  }
  const saturated = saturationThroughput(probes);
  if (saturated <= 0) return { probes, saturated, rows: [] };
  const lps: LoadPoint[] = spreadRates(saturated, points).map((r) => ({
    kind: "request-rate",
    requestRate: r,
    distribution,
  }));
  const rows = await runSweep(base, lps, onPoint);
  return { probes, saturated, rows };
}

/**
 * Statistics exactly as GenAI-Perf computes them with numpy: pairwise-summed mean, percentiles
 * with numpy's default linear interpolation (lib/percentile.ts), population standard deviation
 * (ddof 0), Python's round-half-to-even.
 */
import { percentileSorted } from "../../lib/percentile.ts";

/** numpy's pairwise summation (PW_BLOCKSIZE 128, 8 accumulators), so means match to the ulp. */
export function pairwiseSum(a: readonly number[], start = 0, n = a.length): number {
  if (n < 8) {
    let s = 0;
    for (let i = 0; i < n; i++) s += a[start + i]!;
    return s;
  }
  if (n <= 128) {
    const r = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let j = 0; j < 8; j++) r[j] = a[start + j]!;
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j] = r[j]! + a[start + i + j]!;
    }
    let res = r[0]! + r[1]! + (r[2]! + r[3]!) + (r[4]! + r[5]! + (r[6]! + r[7]!));
    for (; i < n; i++) res += a[start + i]!;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

export function mean(a: readonly number[]): number {
  return pairwiseSum(a) / a.length;
}

/** numpy.std with ddof=0: sqrt(mean(|x − mean|²)). */
export function populationStd(a: readonly number[]): number {
  if (a.length === 0) return Number.NaN;
  const m = mean(a);
  return Math.sqrt(pairwiseSum(a.map((x) => (x - m) * (x - m))) / a.length);
}

/** Python 3 round(x) for floats: nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export const PERCENTILES = [1, 5, 10, 25, 50, 75, 90, 95, 99] as const;

export interface MetricStats {
  unit: string;
  avg: number;
  p1?: number;
  p5?: number;
  p10?: number;
  p25?: number;
  p50?: number;
  p75?: number;
  p90?: number;
  p95?: number;
  p99?: number;
  min?: number;
  max?: number;
  std?: number;
}

/** Full per-request statistics; `scale` applied after computing (GenAI-Perf: value·(1/1e6)). */
export function describe(values: readonly number[], unit: string, scale?: number): MetricStats {
  const sorted = [...values].sort((x, y) => x - y);
  const s = (v: number) => (scale === undefined ? v : v * scale);
  const out: MetricStats = { unit, avg: s(mean(values)) };
  for (const p of PERCENTILES) {
    (out as unknown as Record<string, number>)[`p${p}`] = s(percentileSorted(sorted, p));
  }
  out.min = s(sorted[0]!);
  out.max = s(sorted[sorted.length - 1]!);
  out.std = s(populationStd(values));
  return out;
}

/**
 * Confidence intervals for "how much did B change a statistic relative to A".
 *
 * - Small samples (≤ EXACT_LIMIT per side): the percentile bootstrap, resampling requests with a
 *   seeded RNG.
 * - Large samples: the same bootstrap distribution drawn without materialising resamples. For a
 *   quantile, the bootstrap quantile of a resample is the order statistic x₍ⱼ₎ whose index
 *   follows from a binomial count (normal approximation, exact enough for n > EXACT_LIMIT); for
 *   the mean, the bootstrap mean is normal with sd = s/√n. O(R log n) instead of O(R n), so a
 *   million records compare in seconds.
 * - Several repeats: a Student-t interval over the per-repeat deltas (repeats, not requests, are
 *   then the independent units).
 */
import { mean, percentileSorted } from "./genai-perf/stats.ts";

export const EXACT_LIMIT = 5000;
export const RESAMPLES = 1000;

export type Statistic = { kind: "mean" } | { kind: "quantile"; p: number };

/** Mulberry32: small, fast, seeded. */
export function seededRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normal(rng: () => number): number {
  let u = 0;
  while (u === 0) u = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

export function statisticOf(sorted: readonly number[], stat: Statistic): number {
  return stat.kind === "mean" ? mean(sorted) : percentileSorted(sorted, stat.p);
}

/** R bootstrap replicates of `stat` over `sorted` (ascending). */
export function bootstrapReplicates(sorted: readonly number[], stat: Statistic, rng: () => number, r = RESAMPLES): number[] {
  const n = sorted.length;
  const out = new Array<number>(r);
  if (n === 0) return out.fill(Number.NaN);
  if (n <= EXACT_LIMIT) {
    const buf = new Float64Array(n);
    for (let i = 0; i < r; i++) {
      for (let j = 0; j < n; j++) buf[j] = sorted[Math.floor(rng() * n)]!;
      if (stat.kind === "mean") {
        let s = 0;
        for (let j = 0; j < n; j++) s += buf[j]!;
        out[i] = s / n;
      } else {
        buf.sort();
        out[i] = percentileSorted(buf as unknown as number[], stat.p);
      }
    }
    return out;
  }
  if (stat.kind === "mean") {
    const m = mean(sorted);
    let ss = 0;
    for (const x of sorted) ss += (x - m) ** 2;
    const se = Math.sqrt(ss / n) / Math.sqrt(n);
    for (let i = 0; i < r; i++) out[i] = m + se * normal(rng);
    return out;
  }
  // Bootstrap quantile: the rank position p·(n-1) lands on an order statistic whose index, in a
  // resample, is shifted by binomial noise: index ≈ n·q̂ with q̂ ~ N(p, p(1-p)/n).
  const p = stat.p / 100;
  const sd = Math.sqrt((p * (1 - p)) / n);
  for (let i = 0; i < r; i++) {
    const q = Math.min(1, Math.max(0, p + sd * normal(rng)));
    out[i] = percentileSorted(sorted, q * 100);
  }
  return out;
}

export interface DeltaInterval {
  a: number;
  b: number;
  deltaPct: number;
  lowPct: number;
  highPct: number;
  method: string;
}

/** Percent change of `stat` from A to B with a 95% bootstrap interval. Inputs need not be sorted. */
export function bootstrapDelta(aValues: readonly number[], bValues: readonly number[], stat: Statistic, seed = 1): DeltaInterval {
  const a = Float64Array.from(aValues).sort();
  const b = Float64Array.from(bValues).sort();
  const aArr = a as unknown as number[];
  const bArr = b as unknown as number[];
  const aStat = statisticOf(aArr, stat);
  const bStat = statisticOf(bArr, stat);
  const rng = seededRng(seed);
  const ra = bootstrapReplicates(aArr, stat, rng);
  const rb = bootstrapReplicates(bArr, stat, rng);
  const deltas = ra.map((x, i) => ((rb[i]! - x) / x) * 100).filter(Number.isFinite);
  deltas.sort((x, y) => x - y);
  const exact = a.length <= EXACT_LIMIT && b.length <= EXACT_LIMIT;
  return {
    a: aStat,
    b: bStat,
    deltaPct: ((bStat - aStat) / aStat) * 100,
    lowPct: deltas.length ? percentileSorted(deltas, 2.5) : Number.NaN,
    highPct: deltas.length ? percentileSorted(deltas, 97.5) : Number.NaN,
    method: `bootstrap (${exact ? "resampling" : "order-statistic"}, ${RESAMPLES}×) over ${a.length}+${b.length} requests`,
  };
}

/** Two-sided 97.5% Student-t quantiles for df = 1..30 (then ~1.96). */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export function tQuantile975(df: number): number {
  return df <= 0 ? Number.NaN : (T975[df - 1] ?? 1.96);
}

/** Interval over per-repeat statistics (paired by repeat index when counts match). */
export function repeatsDelta(aPerRepeat: readonly number[], bPerRepeat: readonly number[]): DeltaInterval {
  const r = Math.min(aPerRepeat.length, bPerRepeat.length);
  const deltas = Array.from({ length: r }, (_, i) => ((bPerRepeat[i]! - aPerRepeat[i]!) / aPerRepeat[i]!) * 100);
  const m = mean(deltas);
  const sd = Math.sqrt(deltas.reduce((s, d) => s + (d - m) ** 2, 0) / Math.max(1, r - 1));
  const half = tQuantile975(r - 1) * (sd / Math.sqrt(r));
  const a = mean(aPerRepeat);
  const b = mean(bPerRepeat);
  return { a, b, deltaPct: m, lowPct: m - half, highPct: m + half, method: `t interval over ${r} repeats` };
}

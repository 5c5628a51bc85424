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
import { percentileSorted } from "../lib/percentile.ts";
import { createRng, type Rng } from "../lib/random.ts";
import { mean } from "./genai-perf/stats.ts";

export const EXACT_LIMIT = 2000;
export const RESAMPLES = 1000;

export type Statistic = { kind: "mean" } | { kind: "quantile"; p: number };

export function statisticOf(sorted: readonly number[], stat: Statistic): number {
  return stat.kind === "mean" ? mean(sorted) : percentileSorted(sorted, stat.p);
}

/**
 * R bootstrap replicates of each statistic over `sorted` (ascending): out[s][r]. One resample
 * serves every statistic. A resample is a vector of multiplicities over the sorted values, so its
 * quantiles come from one cumulative walk (no sort) and its mean from one weighted sum.
 */
export function bootstrapReplicates(
  sorted: readonly number[],
  stats: readonly Statistic[],
  rng: Rng,
  r = RESAMPLES,
): number[][] {
  const n = sorted.length;
  const out = stats.map(() => new Array<number>(r).fill(Number.NaN));
  if (n === 0) return out;
  if (n <= EXACT_LIMIT) {
    const counts = new Int32Array(n);
    // Ranks each quantile needs (numpy linear: between floor and ceil of (n-1)·p).
    const q = stats.map((st) => {
      if (st.kind === "mean") return undefined;
      const pos = ((n - 1) * st.p) / 100;
      return {
        lo: Math.floor(pos),
        hi: Math.min(n - 1, Math.floor(pos) + 1),
        g: pos - Math.floor(pos),
      };
    });
    const wanted = [...new Set(q.flatMap((x) => (x ? [x.lo, x.hi] : [])))].sort((x, y) => x - y);
    const at = new Map<number, number>();
    for (let i = 0; i < r; i++) {
      counts.fill(0);
      for (let j = 0; j < n; j++) counts[rng.int(n)]!++;
      let sum = 0;
      let cum = 0;
      let w = 0;
      for (let k = 0; k < n; k++) {
        const c = counts[k]!;
        if (c === 0) continue;
        sum += c * sorted[k]!;
        cum += c;
        while (w < wanted.length && wanted[w]! < cum) at.set(wanted[w++]!, sorted[k]!);
      }
      for (let s = 0; s < stats.length; s++) {
        const x = q[s];
        if (!x) out[s]![i] = sum / n;
        else {
          const a = at.get(x.lo)!;
          const b = at.get(x.hi)!;
          out[s]![i] = x.g >= 0.5 ? b - (b - a) * (1 - x.g) : a + (b - a) * x.g;
        }
      }
    }
    return out;
  }
  stats.forEach((st, s) => {
    const row = out[s]!;
    if (st.kind === "mean") {
      // The bootstrap mean is normal with sd = s/√n for samples this large.
      const m = mean(sorted);
      let ss = 0;
      for (const x of sorted) ss += (x - m) ** 2;
      const se = Math.sqrt(ss / n) / Math.sqrt(n);
      for (let i = 0; i < r; i++) row[i] = rng.gauss(m, se);
      return;
    }
    // Bootstrap quantile: the rank fraction of a resample's p-quantile varies like a binomial
    // proportion, q̂ ~ N(p, p(1-p)/n); the replicate is the order statistic at q̂.
    const p = st.p / 100;
    const sd = Math.sqrt((p * (1 - p)) / n);
    for (let i = 0; i < r; i++)
      row[i] = percentileSorted(sorted, Math.min(1, Math.max(0, rng.gauss(p, sd))) * 100);
  });
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

/** Percent change of each statistic from A to B with 95% bootstrap intervals. Inputs need not be sorted. */
export function bootstrapDeltas(
  aValues: readonly number[],
  bValues: readonly number[],
  stats: readonly Statistic[],
  seed = 1,
): DeltaInterval[] {
  const a = Float64Array.from(aValues).sort() as unknown as number[];
  const b = Float64Array.from(bValues).sort() as unknown as number[];
  const rng = createRng(seed);
  const ra = bootstrapReplicates(a, stats, rng);
  const rb = bootstrapReplicates(b, stats, rng);
  const exact = a.length <= EXACT_LIMIT && b.length <= EXACT_LIMIT;
  const method = `bootstrap (${exact ? "resampling" : "order-statistic"}, ${RESAMPLES}×) over ${a.length}+${b.length} requests`;
  return stats.map((st, s) => {
    const aStat = statisticOf(a, st);
    const bStat = statisticOf(b, st);
    const deltas = ra[s]!.map((x, i) => ((rb[s]![i]! - x) / x) * 100).filter(Number.isFinite);
    deltas.sort((x, y) => x - y);
    return {
      a: aStat,
      b: bStat,
      deltaPct: ((bStat - aStat) / aStat) * 100,
      lowPct: deltas.length ? percentileSorted(deltas, 2.5) : Number.NaN,
      highPct: deltas.length ? percentileSorted(deltas, 97.5) : Number.NaN,
      method,
    };
  });
}

export function bootstrapDelta(
  aValues: readonly number[],
  bValues: readonly number[],
  stat: Statistic,
  seed = 1,
): DeltaInterval {
  return bootstrapDeltas(aValues, bValues, [stat], seed)[0]!;
}

/** Two-sided 97.5% Student-t quantiles for df = 1..30 (then ~1.96). */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145,
  2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048,
  2.045, 2.042,
];

export function tQuantile975(df: number): number {
  return df <= 0 ? Number.NaN : (T975[df - 1] ?? 1.96);
}

/** Interval over per-repeat statistics (paired by repeat index when counts match). */
export function repeatsDelta(
  aPerRepeat: readonly number[],
  bPerRepeat: readonly number[],
): DeltaInterval {
  const r = Math.min(aPerRepeat.length, bPerRepeat.length);
  const deltas = Array.from(
    { length: r },
    (_, i) => ((bPerRepeat[i]! - aPerRepeat[i]!) / aPerRepeat[i]!) * 100,
  );
  const m = mean(deltas);
  const sd = Math.sqrt(deltas.reduce((s, d) => s + (d - m) ** 2, 0) / Math.max(1, r - 1));
  const half = tQuantile975(r - 1) * (sd / Math.sqrt(r));
  const a = mean(aPerRepeat);
  const b = mean(bPerRepeat);
  return {
    a,
    b,
    deltaPct: m,
    lowPct: m - half,
    highPct: m + half,
    method: `t interval over ${r} repeats`,
  };
}

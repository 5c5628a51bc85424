/**
 * The repository's one percentile definition: numpy's default, `numpy.percentile(a, p)` with
 * method="linear" (Hyndman & Fan type 7). GenAI-Perf computes its p1…p99 this way
 * (genai_perf/metrics/statistics.py, `_calculate_percentiles`: `np.percentile(data, p)`), so our
 * figures and GenAI-Perf's agree on the same samples.
 *
 * Steps, as in numpy/lib/_function_base_impl.py: q = p/100; virtual index (n−1)·q (numpy's
 * `_QuantileMethods["linear"]`); neighbours floor(index) and floor(index)+1, clipped to the last
 * element; weight γ = index − floor(index). Then numpy's `_lerp`: a + (b−a)·γ, or b − (b−a)·(1−γ)
 * when γ ≥ 0.5, which keeps the result monotonic and exact at γ = 1. Matches numpy to the ulp.
 */

/** `numpy.quantile(sorted, q)`, q in [0, 1]. `sorted` must be ascending. NaN when empty. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile ${q} is outside [0, 1]`);
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const virtual = (n - 1) * q;
  const prev = Math.min(n - 1, Math.floor(virtual));
  const next = Math.min(n - 1, prev + 1);
  const gamma = virtual - Math.floor(virtual);
  const a = sorted[prev]!;
  const b = sorted[next]!;
  const diff = b - a;
  return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;
}

/** `numpy.percentile(sorted, p)`, p in [0, 100]. `sorted` must be ascending. NaN when empty. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} is outside [0, 100]`);
  return quantileSorted(sorted, p / 100);
}

/** `numpy.percentile(xs, p)` of unsorted values (sorts a copy). NaN when empty. */
export function percentile(xs: readonly number[], p: number): number {
  return percentileSorted(
    [...xs].sort((x, y) => x - y),
    p,
  );
}

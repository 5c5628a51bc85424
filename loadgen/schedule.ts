/** Arrival schedules (pure): offsets in ns from the start of a load point. */
import type { Rng } from "../lib/random.ts";

export type Distribution = "constant" | "poisson" | "gamma";

/**
 * n arrival offsets for a target rate (req/s). constant: evenly spaced (perf_analyzer's default);
 * poisson: exponential gaps; gamma: gaps ~ Gamma(shape=burstiness, scale=1/(rate·shape)), the
 * vLLM benchmark convention (shape 1 = Poisson, < 1 burstier). First arrival at 0.
 */
export function arrivalOffsetsNs(
  n: number,
  rate: number,
  distribution: Distribution,
  rng: Rng,
  burstiness = 1,
): number[] {
  const out = new Array<number>(n);
  let t = 0;
  for (let i = 0; i < n; i++) {
    out[i] = Math.round(t);
    const gapS =
      distribution === "constant"
        ? 1 / rate
        : distribution === "poisson"
          ? rng.exponential(rate)
          : rng.gamma(burstiness, 1 / (rate * burstiness));
    t += gapS * 1e9;
  }
  return out;
}

/** Trace arrivals (ms, already time-scaled) → ns offsets. */
export function traceOffsetsNs(atMs: readonly number[]): number[] {
  return atMs.map((t) => Math.round(t * 1e6));
}

/** GenAI-Perf's default request count: max(10, 2 × concurrency); rate mode: max(10, 2·⌈rate⌉). */
export function defaultRequestCount(opts: { concurrency?: number; requestRate?: number }): number {
  if (opts.requestRate !== undefined) return Math.max(10, 2 * Math.ceil(opts.requestRate));
  return Math.max(10, 2 * (opts.concurrency ?? 1));
}

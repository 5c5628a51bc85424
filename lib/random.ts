/**
 * The repository's one seeded random generator: xoshiro128** (Blackman & Vigna), its state filled
 * by splitmix32, 53-bit doubles from two 32-bit outputs. Everything that samples with a seed
 * (workloads, schedules, engine-sim output lengths and faults, router tie-breaks, bootstrap CIs,
 * benches) draws from it, so one seed means one stream everywhere. For non-reproducible picks,
 * Math.random is fine.
 */

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  int(maxExclusive: number): number;
  /** Python random.gauss-like normal sample. */
  gauss(mean: number, sd: number): number;
  exponential(rate: number): number;
  /** Gamma(shape k, scale θ) (Marsaglia–Tsang; k < 1 boosted). */
  gamma(shape: number, scale: number): number;
  weibull(shape: number, scale: number): number;
  shuffle<T>(xs: T[]): T[];
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** xoshiro128** seeded through splitmix32. */
export function createRng(seed: number): Rng {
  const sm = splitmix32(Math.floor(seed) ^ 0x5bd1e995);
  let a = sm();
  let b = sm();
  let c = sm();
  let d = sm();
  const u32 = () => {
    const r = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
    const t = (b << 9) >>> 0;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return r;
  };
  const next = () => (u32() * 2 ** 21 + (u32() >>> 11)) / 2 ** 53;
  let spare: number | undefined;
  const normal = (): number => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = next();
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
  const gamma = (k: number, theta: number): number => {
    if (k < 1) return gamma(k + 1, theta) * next() ** (1 / k);
    const dd = k - 1 / 3;
    const cc = 1 / Math.sqrt(9 * dd);
    for (;;) {
      const x = normal();
      const v0 = 1 + cc * x;
      if (v0 <= 0) continue;
      const v = v0 * v0 * v0;
      const u = next();
      if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + dd * (1 - v + Math.log(v)))
        return dd * v * theta;
    }
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    gauss: (mean, sd) => (sd === 0 ? mean : mean + sd * normal()),
    exponential: (rate) => -Math.log(1 - next()) / rate,
    gamma,
    weibull: (shape, scale) => scale * (-Math.log(1 - next())) ** (1 / shape),
    shuffle<T>(xs: T[]): T[] {
      for (let i = xs.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [xs[i], xs[j]] = [xs[j]!, xs[i]!];
      }
      return xs;
    },
  };
}

/** The generator's uniform [0, 1) stream alone, for code that takes a `() => number`. */
export function seededRandom(seed: number): () => number {
  return createRng(seed).next;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * Auto request rates: probe the stack's saturation (the closed-loop throughput at a high
 * concurrency, both arms), then sweep open-loop rates at fractions of it. Each phase is an
 * ordinary run of the one run path: the probe a run of its own, the sweep a run whose load
 * points are the computed rates (so its manifest's overrides hold them and a resume measures the
 * same rates) and whose manifest records the probe that set them.
 */
import { UserError } from "../lib/errors.ts";
import type { Comparison } from "../results/compare-types.ts";
import type { SaturationProbe } from "../results/store.ts";
import { LIMITS } from "../stacks/schema.ts";

export interface AutoRates {
  /** Fractions of the probed saturation, each in (0, 2]; default 0.1, 0.2 … 1.0. */
  fractions: number[];
  distribution: "constant" | "poisson";
  /** The closed-loop probe: in-flight requests and measured requests per arm. */
  probeConcurrency: number;
  probeRequests: number;
}

export const DEFAULT_FRACTIONS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];

export function autoRates(o: Partial<AutoRates> = {}): AutoRates {
  const a: AutoRates = {
    fractions: o.fractions ?? DEFAULT_FRACTIONS,
    distribution: o.distribution ?? "poisson",
    probeConcurrency: o.probeConcurrency ?? 64,
    probeRequests: o.probeRequests ?? 256,
  };
  if (a.fractions.length === 0 || a.fractions.length > LIMITS.loadPoints)
    throw new UserError(
      `auto rates: 1 to ${LIMITS.loadPoints} fractions, not ${a.fractions.length}`,
    );
  for (const f of a.fractions)
    if (!(f > 0 && f <= 2))
      throw new UserError(`auto rates: fraction ${f} is not in (0, 2] (1 = the probed saturation)`);
  if (
    !Number.isInteger(a.probeConcurrency) ||
    a.probeConcurrency < 1 ||
    a.probeConcurrency > LIMITS.concurrency
  )
    throw new UserError(
      `auto rates: probe concurrency ${a.probeConcurrency} is not 1…${LIMITS.concurrency}`,
    );
  if (!Number.isInteger(a.probeRequests) || a.probeRequests < a.probeConcurrency)
    throw new UserError(
      `auto rates: the probe needs at least as many requests (${a.probeRequests}) as its concurrency (${a.probeConcurrency}) to reach it`,
    );
  return a;
}

/** `--auto-rates 0.1,0.5,1`: the fractions, clearly refused when not numbers. */
export function parseFractions(text: string): number[] {
  return text.split(",").map((s) => {
    const t = s.trim();
    const v = t.endsWith("%") ? Number(t.slice(0, -1)) / 100 : Number(t);
    if (!t || !Number.isFinite(v))
      throw new UserError(`--auto-rates: "${s}" is not a fraction (0.5) or a percentage (50%)`);
    return v;
  });
}

/** The probe run's overrides: one closed-loop point, measured once. */
export function probeOverrides(a: AutoRates): string[] {
  return [
    `workload.loadPoints=[{concurrency: ${a.probeConcurrency}}]`,
    `workload.requestCount=${a.probeRequests}`,
    "workload.order=listed",
    "run.repeats=1",
  ];
}

/**
 * What each arm sustained at the probe: completed requests per second, summed over the models
 * (one comparison row per model). The sweep is a fraction of the higher arm's, so that its top
 * point saturates both arms; a probe point that was INVALID or failed every request is refused.
 */
export function saturationOf(c: Comparison, runId: string, a: AutoRates): SaturationProbe {
  const perArm: Record<string, number> = { [c.labels.a]: 0, [c.labels.b]: 0 };
  const problems: string[] = [];
  for (const r of c.rows) {
    for (const [label, s] of [
      [c.labels.a, r.a],
      [c.labels.b, r.b],
    ] as const) {
      perArm[label] = (perArm[label] ?? 0) + s.achievedRps;
      if (!s.valid)
        problems.push(`${label} ${r.model}: INVALID (${s.invalidReason ?? "see the report"})`);
    }
  }
  for (const [label, rps] of Object.entries(perArm))
    if (!(rps > 0)) problems.push(`${label}: no request completed`);
  if (problems.length)
    throw new UserError(
      `the saturation probe (run ${runId}) measured nothing to sweep from: ${problems.join("; ")}`,
      {
        hint: `see that run's report; the sweep was not started`,
      },
    );
  const saturationRps = Math.max(...Object.values(perArm));
  return {
    runId,
    concurrency: a.probeConcurrency,
    requests: a.probeRequests,
    perArm,
    saturationRps,
    fractions: a.fractions,
  };
}

/** The sweep's rates: each fraction of the saturation, 3 significant digits, ascending as given. */
export function sweepRates(probe: SaturationProbe): number[] {
  return probe.fractions.map((f) => {
    const r = Number((f * probe.saturationRps).toPrecision(3));
    return Math.min(LIMITS.requestRate, Math.max(0.001, r));
  });
}

/** The sweep run's overrides: the rates as its load points, in the order given. */
export function sweepOverrides(probe: SaturationProbe, a: AutoRates): string[] {
  const points = sweepRates(probe).map(
    (r) => `{requestRate: ${r}, distribution: ${a.distribution}}`,
  );
  return [`workload.loadPoints=[${points.join(", ")}]`, "workload.order=listed"];
}

/**
 * The experiment plan (pure, serialisable): the arms (one StackPlan each) and the ordered steps
 * every target executes — arm, load point, repeat, seed, label — plus the measurement settings
 * the runner needs (warm-up, SLOs, session header). `plan.json` is this object; the runner reads
 * it on whatever host it runs on, so no target re-encodes load points as flags.
 */
import { createHash } from "node:crypto";
import { UserError } from "../lib/errors.ts";
import {
  type ArmSwaps,
  EXPERIMENT_PLAN_KIND,
  EXPERIMENT_PLAN_VERSION,
  type ExperimentPlan,
  type ExperimentStep,
  type StepOrder,
} from "../runner/plan-file.ts";
import { loadPointLabel, pointSeed } from "../stacks/load-point.ts";
import type { Arm, LoadPoint, StackPlan, Target } from "../stacks/plan-types.ts";

/** `--quick`: the same pipeline on a reduced load (CI runs it; under 60 s on 2 cores). */
export const QUICK_OVERRIDES = [
  "workload.loadPoints=[{concurrency: 2}, {concurrency: 8}]",
  "workload.requestCount=24",
  "workload.outputTokensMean=48",
  "workload.outputTokensStddev=16",
  "run.warmupRequests=2",
  "run.repeats=1",
];

/**
 * Side by side where both arms fit (local processes; a cluster, one namespace per arm; two
 * running endpoints); otherwise the host swaps arms.
 */
export function defaultOrder(target: Target, interleave: boolean): StepOrder {
  if (!interleave) return "sequential";
  return target === "local" || target === "kubeconfig" || target === "gke" || target === "endpoint"
    ? "per-point"
    : "abba";
}

/** The ordered steps for the given order (pure; property-tested). */
export function orderSteps(
  arms: readonly Arm[],
  points: readonly LoadPoint[],
  repeats: number,
  seed: number,
  order: StepOrder,
): ExperimentStep[] {
  const out: Omit<ExperimentStep, "index">[] = [];
  const step = (arm: Arm, point: number, repeat: number) =>
    out.push({
      arm,
      point,
      label: loadPointLabel(points[point]!),
      repeat,
      seed: pointSeed(seed, point, repeat),
    });
  const reversed = [...arms].reverse();
  if (order === "per-point") {
    let flip = false;
    for (let r = 0; r < repeats; r++)
      for (let p = 0; p < points.length; p++) {
        for (const arm of flip ? reversed : arms) step(arm, p, r);
        flip = !flip;
      }
  } else if (order === "abba") {
    for (let r = 0; r < repeats; r++)
      for (const arm of r % 2 === 1 ? reversed : arms)
        for (let p = 0; p < points.length; p++) step(arm, p, r);
  } else {
    for (const arm of arms)
      for (let r = 0; r < repeats; r++) for (let p = 0; p < points.length; p++) step(arm, p, r);
  }
  return out.map((s, index) => ({ index, ...s }));
}

/** Arm changes between consecutive steps: each is an arm swap on a host that cannot hold both. */
export function countSwaps(steps: readonly ExperimentStep[]): number {
  let n = 0;
  for (let i = 1; i < steps.length; i++) if (steps[i]!.arm !== steps[i - 1]!.arm) n++;
  return n;
}

/** Assumed weight-loading time of a real vLLM engine per swap (stated in the plan, not measured). */
export const GPU_ENGINE_LOAD_SEC = 300;

function swapsOf(
  steps: readonly ExperimentStep[],
  order: StepOrder,
  plans: readonly StackPlan[],
): ArmSwaps {
  if (order === "per-point")
    return { count: 0, perSwapSec: 0, note: "both arms run side by side: no swaps" };
  const emulated = plans.every((p) => p.emulated);
  const perSwapSec = emulated
    ? Math.max(0, ...plans.flatMap((p) => p.engines.map((e) => e.emulator.startupDelaySec)))
    : GPU_ENGINE_LOAD_SEC;
  const count = countSwaps(steps);
  return {
    count,
    perSwapSec,
    note: emulated
      ? `each swap restarts every emulated engine (${perSwapSec} s start-up delay)`
      : `each swap stops one arm and reloads every engine of the other (weights: assumed ~${perSwapSec} s per swap on a GPU host, ${Math.round((count * perSwapSec) / 60)} min in all)`,
  };
}

export interface ExperimentPlanInput {
  stacks: string[];
  overrides: string[];
  quick: boolean;
  /** One StackPlan per arm, in arm order (side A first). */
  plans: StackPlan[];
  interleave: boolean;
  /** Overrides the target's default order. */
  order?: StepOrder;
}

/** The runner sections the arms must share: a comparison of different loads measures nothing. */
function sameLoad(a: StackPlan, b: StackPlan): string | undefined {
  const ra = a.runner;
  const rb = b.runner;
  const pairs: [string, unknown, unknown][] = [
    ["workload", ra.workload, rb.workload],
    ["workload.loadPoints", ra.loadPoints, rb.loadPoints],
    ["run.repeats", ra.repeats, rb.repeats],
    ["run.warmupRequests", ra.warmupRequests, rb.warmupRequests],
    ["slo", ra.slo, rb.slo],
    ["run.seed", ra.seed, rb.seed],
    ["runner.parallelism", ra.parallelism ?? 1, rb.parallelism ?? 1],
    ["workload.order", ra.order ?? "listed", rb.order ?? "listed"],
  ];
  for (const [path, x, y] of pairs)
    if (JSON.stringify(x) !== JSON.stringify(y))
      return `${path} differs between ${a.stack} and ${b.stack}`;
  return undefined;
}

export function experimentPlan(input: ExperimentPlanInput): ExperimentPlan {
  const { plans } = input;
  const first = plans[0];
  if (!first) throw new UserError("an experiment needs at least one arm");
  const armNames = plans.map((p) => p.mode);
  if (new Set(armNames).size !== armNames.length)
    throw new UserError(`two arms share the mode "${armNames.join(", ")}"`, {
      hint: "give one baseline and one managed stack (mode: baseline | managed)",
    });
  for (const p of plans.slice(1)) {
    if (p.target !== first.target)
      throw new UserError(
        `arms target different hosts: ${first.stack} → ${first.target}, ${p.stack} → ${p.target}`,
      );
    const diff = sameLoad(first, p);
    if (diff)
      throw new UserError(`the arms must drive the same load: ${diff}`, {
        hint: "put workload, run and slo settings in both stacks alike (or use --set for both)",
      });
  }
  const r = first.runner;
  const order = input.order ?? defaultOrder(first.target, input.interleave);
  const steps = orderSteps(armNames, r.loadPoints, r.repeats, r.seed, order);
  return {
    kind: EXPERIMENT_PLAN_KIND,
    schemaVersion: EXPERIMENT_PLAN_VERSION,
    stacks: input.stacks,
    overrides: input.overrides,
    quick: input.quick,
    target: first.target,
    emulated: plans.every((p) => p.emulated),
    armNames,
    arms: Object.fromEntries(plans.map((p) => [p.mode, p])),
    order,
    loadPoints: r.loadPoints,
    workload: r.workload,
    repeats: r.repeats,
    warmupRequests: r.warmupRequests,
    slo: r.slo,
    sessionHeader: Object.fromEntries(plans.map((p) => [p.mode, p.router.options.sessionHeader])),
    steps,
    swaps: swapsOf(steps, order, plans),
  };
}

/**
 * What identifies the measurement: everything but host-bound details (ports a local launcher
 * moves). A resume with a different fingerprint measures something else and is refused.
 */
export function planFingerprint(p: ExperimentPlan): string {
  const { arms, ...rest } = p;
  const armKeys = Object.fromEntries(
    Object.entries(arms).map(([k, a]) => [
      k,
      { ...a, warnings: [], cost: undefined, engines: a.engines.map((e) => ({ ...e, port: 0 })) },
    ]),
  );
  return createHash("sha256")
    .update(JSON.stringify({ ...rest, arms: armKeys }))
    .digest("hex")
    .slice(0, 16);
}

/** Top-level differences between two plans, for the refusal of a resume with another plan. */
export function planDifferences(a: ExperimentPlan, b: ExperimentPlan): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof ExperimentPlan>;
  const out: string[] = [];
  for (const k of keys) {
    if (k === "arms") {
      for (const arm of new Set([...Object.keys(a.arms), ...Object.keys(b.arms)])) {
        const pa = a.arms[arm];
        const pb = b.arms[arm];
        if (!pa || !pb) out.push(`arms.${arm}: only in one plan`);
        else
          for (const f of Object.keys(pa) as (keyof StackPlan)[])
            if (f !== "warnings" && f !== "cost" && JSON.stringify(pa[f]) !== JSON.stringify(pb[f]))
              out.push(`arms.${arm}.${f}`);
      }
    } else if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push(k);
  }
  return out;
}

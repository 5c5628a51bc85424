/**
 * The runner's input contract: `plan.json`, the experiment plan as the runner reads it on whatever
 * host it runs on (built by experiments/plan.ts; bound to a host's addresses by the target).
 */
import { UserError } from "../lib/errors.ts";
import type {
  Arm,
  LoadPoint,
  SloTargets,
  StackPlan,
  Target,
  WorkloadPlan,
} from "../stacks/plan-types.ts";

export const EXPERIMENT_PLAN_KIND = "inferbench-experiment-plan";
export const EXPERIMENT_PLAN_VERSION = 1;

/**
 * How steps are ordered across arms:
 * - `per-point`: both arms are deployed side by side; every load point runs on both arms before
 *   the next, alternating which arm goes first, so machine drift cancels out;
 * - `abba`: one host that must swap arms; each repeat runs all points of one arm, then the other,
 *   in A B B A blocks so neither arm always runs first (one swap per repeat, not per point);
 * - `sequential`: all of one arm, then the other (`--no-interleave`): one swap in all.
 */
export type StepOrder = "per-point" | "abba" | "sequential";

export interface ExperimentStep {
  /** Position in the plan's order (0-based). */
  index: number;
  arm: Arm;
  /** Index into `loadPoints`. */
  point: number;
  label: string;
  repeat: number;
  /** Workload seed: equal on both arms, different between points and repeats. */
  seed: number;
}

export interface ArmSwaps {
  /** Times the host stops one arm's engines and loads the other's (0 when side by side). */
  count: number;
  /** Seconds each swap is expected to take (engine start-up: weight loading on a GPU host). */
  perSwapSec: number;
  note: string;
}

export interface ExperimentPlan {
  kind: typeof EXPERIMENT_PLAN_KIND;
  schemaVersion: typeof EXPERIMENT_PLAN_VERSION;
  /** The stacks the arms come from (one stack for local, one per arm for cloud). */
  stacks: string[];
  overrides: string[];
  quick: boolean;
  target: Target;
  emulated: boolean;
  /** Arm order as given: the first is side A of the comparison. */
  armNames: Arm[];
  arms: Record<string, StackPlan>;
  order: StepOrder;
  loadPoints: LoadPoint[];
  workload: WorkloadPlan;
  repeats: number;
  warmupRequests: number;
  slo: SloTargets;
  /** Header that carries the session key of multi-turn workloads (the router's, per arm). */
  sessionHeader: Record<string, string>;
  steps: ExperimentStep[];
  swaps: ArmSwaps;
  /** Host addresses per arm, filled in by the target that hands the plan to a runner. */
  endpoints?: Record<string, ArmEndpoints>;
}

/** Where the runner reaches one arm's servers on the host it runs on (bound by the target). */
export interface ArmEndpoints {
  /** Base URL the load goes to (a path prefix is kept: `<router>/v1/...`). */
  router: string;
  /** engine name → base URL. */
  engines: Record<string, string>;
  /** Path under `router` that answers 200 when it serves (default /health). */
  readyPath?: string;
}

/** Reads and checks a plan.json (for `inferbench runner --plan`): clear errors naming the file. */
export function parseExperimentPlan(text: string, file: string): ExperimentPlan {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${file}: not valid JSON (${(err as Error).message})`, {
      hint: "write it again with `inferbench plan --stack S --out DIR`",
    });
  }
  const o = v as Partial<ExperimentPlan> | null;
  if (!o || typeof o !== "object" || o.kind !== EXPERIMENT_PLAN_KIND)
    throw new UserError(
      `${file}: not an inferbench experiment plan (kind "${EXPERIMENT_PLAN_KIND}" expected)`,
      {
        hint: "a stack's plan.json from `inferbench plan --out` names its kind; pass that file",
      },
    );
  if (o.schemaVersion !== EXPERIMENT_PLAN_VERSION)
    throw new UserError(
      `${file}: experiment plan version ${String(o.schemaVersion)}; this inferbench reads version ${EXPERIMENT_PLAN_VERSION}`,
      { hint: "render the plan again with this version of inferbench" },
    );
  for (const k of ["armNames", "arms", "steps", "loadPoints", "workload"] as const)
    if (o[k] === undefined)
      throw new UserError(`${file}: experiment plan without "${k}" (truncated or hand-edited?)`);
  return o as ExperimentPlan;
}

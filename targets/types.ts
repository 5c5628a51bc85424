/**
 * One interface for every place a plan runs. The executor (experiments/execute.ts) owns order,
 * resume, interrupts and destroy-in-finally; a target only knows how to provision its host,
 * put an arm's servers on it, run `inferbench runner` next to them and bring the results home.
 */
import type { Logger } from "../lib/logger.ts";
import type { InfraFacts, RunStore } from "../results/store.ts";
import type { ExperimentPlan, ExperimentStep } from "../runner/plan-file.ts";
import type { Arm } from "../stacks/plan-types.ts";

export interface TargetContext {
  plan: ExperimentPlan;
  store: RunStore;
  log: Logger;
  /** Aborted on the first Ctrl-C: stop measuring (the current point is abandoned). */
  signal: AbortSignal;
  /** Aborted on the second Ctrl-C: skip collecting, destroy at once. */
  hardSignal: AbortSignal;
  onProgress?: (line: string) => void;
  /** Records facts of the host under the manifest's `infra` (merged, saved at once). */
  saveInfra: (facts: Partial<InfraFacts>) => void;
  /** Facts saved by an earlier attempt of this run (a resume), if any. */
  previousInfra?: InfraFacts;
}

export interface Leftover {
  kind: string;
  name: string;
  /** Zone or region, where the resource has one. */
  location?: string;
}

export interface Target {
  readonly kind: ExperimentPlan["target"] | "ssh";
  /** Both arms can be deployed at once (no arm swap between steps). */
  readonly sideBySide: boolean;
  provision(ctx: TargetContext): Promise<void>;
  deployArm(arm: Arm, ctx: TargetContext): Promise<void>;
  /** Measures these steps of the arm with the runner, next to the servers. */
  runArm(arm: Arm, steps: readonly ExperimentStep[], ctx: TargetContext): Promise<void>;
  /** Brings the arm's completed points home into ctx.store (also after a failure or abort). */
  collect(arm: Arm, ctx: TargetContext): Promise<void>;
  undeployArm(arm: Arm, ctx: TargetContext): Promise<void>;
  /** Destroys what provision created; false when it could not (the run then says how). */
  destroy(ctx: TargetContext): Promise<boolean>;
  /** What the kit created that is still there (empty = clean). */
  audit(ctx: TargetContext): Promise<Leftover[]>;
  /** Commands a person can run to remove leftovers. */
  cleanupCommands?(leftovers: readonly Leftover[], ctx: TargetContext): string[];
}

/**
 * A target's run context for tests: both arms of a shipped stack planned with overrides, their
 * experiment plan, the configs the target gets, and a run store with a running manifest.
 */
import { join } from "node:path";
import { experimentPlan } from "../experiments/plan.ts";
import { createLogger } from "../lib/logger.ts";
import { type InfraFacts, RunStore } from "../results/store.ts";
import type { StackConfig } from "../stacks/schema.ts";
import { planStack } from "../targets/plan-stack.ts";
import type { TargetContext } from "../targets/types.ts";

export function targetRun(
  stack: string,
  sets: string[],
  runsRoot: string,
  onSaveInfra: (f: Partial<InfraFacts>) => void = () => {},
) {
  const plans = ["baseline", "managed"].map((m) =>
    planStack(stack, [...sets, `mode=${m}`], { env: {} }),
  );
  const plan = experimentPlan({
    stacks: [stack],
    overrides: sets,
    quick: false,
    plans: plans.map((p) => p.plan),
    interleave: true,
  });
  const configs = Object.fromEntries(plans.map((p) => [p.plan.mode, p.loaded.config])) as Record<
    string,
    StackConfig
  >;
  const runId = `20261202-010000-${Math.random().toString(16).slice(2, 6)}`;
  const store = new RunStore(runId, join(runsRoot, "runs"));
  store.writeJson(store.manifestPath(), {
    runId,
    status: "running",
    arms: ["baseline", "managed"],
  });
  const logs: string[] = [];
  const ac = new AbortController();
  const ctx: TargetContext = {
    plan,
    store,
    log: createLogger("t", (l) => logs.push(l)),
    signal: ac.signal,
    hardSignal: new AbortController().signal,
    saveInfra: (f) => {
      onSaveInfra(f);
      store.updateInfra(f);
    },
  };
  return { plan, configs, ctx, logs, ac, store };
}

/**
 * Load a stack by name and plan it: the one path every command takes from config to plan.
 * Everything a run would trip over later is resolved here, before anything starts: dataset files
 * (readable, well-formed, traces in time order) and the workload's longest request against each
 * model's maxModelLen. Every refusal names the stack file position of the key it is about.
 */

import { workloadExtent } from "../datagen/extent.ts";
import { STACK_DATASET_NAMES } from "../datagen/workload.ts";
import { InputFileError } from "../lib/errors.ts";
import { registerSecret } from "../lib/redact.ts";
import { profileNames } from "../services/engine-sim/profiles.ts";
import { type ConfigPath, type LoadedStack, loadStack } from "../stacks/config.ts";
import { pointSeed } from "../stacks/load-point.ts";
import {
  plan as buildPlan,
  configWorkloadBound,
  configWorkloadExtent,
  PlanError,
  type PlanOptions,
  type RequestExtent,
} from "../stacks/plan.ts";
import type { StackPlan } from "../stacks/plan-types.ts";

export function planStack(
  stack: string,
  overrides: string[] = [],
  opts: PlanOptions & { stacksDir?: string; env?: NodeJS.ProcessEnv } = {},
): { loaded: LoadedStack; plan: StackPlan } {
  const { stacksDir, env, ...planOpts } = opts;
  const loaded = loadStack(stack, {
    overrides,
    ...(stacksDir ? { dir: stacksDir } : {}),
    ...(env ? { env } : {}),
  });
  for (const secret of [loaded.config.hfToken, loaded.config.kubeconfig.content]) {
    if (typeof secret === "string") registerSecret(secret);
  }
  try {
    const extent = planOpts.workloadExtent ?? measureWorkload(loaded);
    return {
      loaded,
      plan: buildPlan(stack, loaded.config, {
        knownProfiles: profileNames(),
        ...planOpts,
        ...(extent ? { workloadExtent: extent } : {}),
      }),
    };
  } catch (err) {
    if (err instanceof PlanError) throw err.located(loaded.locate);
    throw err;
  }
}

/**
 * Builds the workload once per load-point seed, as the runner will, when its longest request is
 * not plain from the config. A bad dataset file becomes a PlanError at the key that names it.
 */
function measureWorkload(loaded: LoadedStack): RequestExtent | undefined {
  const { config } = loaded;
  const fromConfig = configWorkloadExtent(config);
  if (fromConfig) return fromConfig;
  const w = config.workload;
  // Random lengths that cannot overflow even at their extreme need not be measured (fast plan).
  const bound = configWorkloadBound(config);
  const driven = new Set(w.models ?? config.models.map((m) => m.name));
  const smallest = Math.min(
    ...config.models.filter((m) => driven.has(m.name)).map((m) => m.maxModelLen),
  );
  if (bound !== undefined && bound <= smallest) return undefined;
  const seeds: number[] = [];
  for (let p = 0; p < w.loadPoints.length; p++)
    for (let r = 0; r < config.run.repeats; r++) seeds.push(pointSeed(config.run.seed, p, r));
  try {
    return workloadExtent(w.dataset, {
      tokenizer: w.models?.[0] ?? config.models[0]!.name,
      seeds,
      outputTokensMean: w.outputTokensMean,
      outputTokensStddev: w.outputTokensStddev,
      names: STACK_DATASET_NAMES,
    });
  } catch (err) {
    if (!(err instanceof InputFileError)) throw err;
    const d = w.dataset;
    const key: ConfigPath =
      d.kind === "servegen" && d.datasetPath !== undefined && err.message.startsWith(d.datasetPath)
        ? ["workload", "dataset", "datasetPath"]
        : ["workload", "dataset", "path"];
    throw new PlanError(loaded.name, [
      { path: key, message: `${err.message}${err.hint ? ` (${err.hint})` : ""}` },
    ]);
  }
}

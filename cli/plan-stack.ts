/** Load a stack by name and plan it: the one path every command takes from config to plan. */

import { registerSecret } from "../lib/redact.ts";
import { profileNames } from "../services/engine-sim/profiles.ts";
import { type LoadedStack, loadStack } from "../stacks/config.ts";
import { plan as buildPlan, type PlanOptions } from "../stacks/plan.ts";
import type { StackPlan } from "../stacks/plan-types.ts";

export function planStack(
  stack: string,
  overrides: string[] = [],
  opts: PlanOptions & { stacksDir?: string } = {},
): { loaded: LoadedStack; plan: StackPlan } {
  const loaded = loadStack(stack, {
    overrides,
    ...(opts.stacksDir ? { dir: opts.stacksDir } : {}),
  });
  for (const secret of [loaded.config.hfToken, loaded.config.kubeconfig.content]) {
    if (typeof secret === "string") registerSecret(secret);
  }
  return {
    loaded,
    plan: buildPlan(stack, loaded.config, { knownProfiles: profileNames(), ...opts }),
  };
}

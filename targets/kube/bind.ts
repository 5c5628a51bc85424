/** The experiment plan as the runner Job in an arm's namespace sees it (pure). */
import { datasetPathsInPod, kubeEndpoints } from "../../kube/render.ts";
import type { ExperimentPlan } from "../../runner/plan-file.ts";
import type { Arm } from "../../stacks/plan-types.ts";
import { bindPlan } from "../compose-host.ts";

export function bindPlanForKube(
  plan: ExperimentPlan,
  arm: Arm,
  rehearsal: boolean,
): ExperimentPlan {
  const stack = plan.arms[arm]!;
  return bindPlan(plan, arm, rehearsal, {
    endpoints: kubeEndpoints(stack),
    datasetPaths: datasetPathsInPod(stack),
  });
}

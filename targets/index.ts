/** The target for a plan: where it runs decides how arms are deployed and results come home. */
import { UserError } from "../lib/errors.ts";
import type { Logger } from "../lib/logger.ts";
import type { ExperimentPlan } from "../runner/plan-file.ts";
import type { StackConfig } from "../stacks/schema.ts";
import { localTarget } from "./local/index.ts";
import type { Target } from "./types.ts";

export async function targetFor(
  plan: ExperimentPlan,
  opts: { log: Logger; configs: Record<string, StackConfig> },
): Promise<Target> {
  switch (plan.target) {
    case "local":
      return localTarget();
    case "gcp-vm": {
      const { gcpVmTarget } = await import("./gcp-vm/index.ts");
      return gcpVmTarget(opts.configs);
    }
    case "ssh": {
      const { sshTarget } = await import("./ssh/index.ts");
      return sshTarget(opts.configs);
    }
    case "kubeconfig": {
      const { kubeTarget } = await import("./kube/index.ts");
      return kubeTarget(opts.configs);
    }
    case "endpoint": {
      const { endpointTarget } = await import("./endpoint/index.ts");
      return endpointTarget();
    }
    case "gke": {
      const { kubeTarget } = await import("./kube/index.ts");
      const { gkeCluster } = await import("./kube/gke.ts");
      return kubeTarget(opts.configs, {}, (first, stack, deps) => gkeCluster(first, stack, deps));
    }
    default:
      throw new UserError(`target "${plan.target}" cannot run yet`, {
        hint: "runnable targets: local, endpoint, ssh, gcp-vm, kubeconfig, gke (see README: Targets)",
      });
  }
}

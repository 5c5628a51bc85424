/** What a kube arm deploys with: pure, from its stack (kubeconfig) or the GKE section (gke). */
import type { StackConfig } from "../stacks/schema.ts";
import { HF_TOKEN_SECRET, type KubeRenderOptions } from "./render.ts";

export function renderOptionsOf(
  config: StackConfig,
  runId: string,
  rehearsal: boolean,
  extra: { nodeSelector?: Record<string, string>; hfToken: boolean },
): Omit<KubeRenderOptions, "experimentPlan"> {
  const k = config.target === "gke" ? config.gke : config.kubeconfig;
  const kc = config.kubeconfig;
  return {
    runId,
    namespacePrefix: k.namespacePrefix,
    rehearsal,
    kitImage: k.kitImage,
    engineSimImage: k.engineSimImage,
    imagePullPolicy: k.imagePullPolicy,
    hfCache: k.hfCache,
    engineStartupSec: k.engineStartupSec,
    allowUnpinnedImages: config.run.allowUnpinnedImages,
    ...(config.target === "gke"
      ? {
          nodeSelector: extra.nodeSelector ?? {},
          tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
        }
      : {
          nodeSelector: kc.nodeSelector,
          tolerations: kc.tolerations,
          gpuResource: kc.gpuResource,
        }),
    ...(extra.hfToken && !rehearsal ? { hfTokenSecret: HF_TOKEN_SECRET } : {}),
  };
}

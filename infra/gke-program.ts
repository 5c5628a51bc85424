/**
 * The gke target's cluster stack: an inline program that creates one GkeGpuPool (cluster + GPU
 * pool) from a stack's `gke` settings, labelled with the run like the gcp-vm resources, so that
 * the same label audit finds whatever a failed destroy leaves.
 */
import type { InlineProgram } from "./automation.ts";
import { GkeGpuPool, type GkeGpuPoolArgs, type GkeSettings } from "./gke-pool.ts";
import { vmLabels } from "./naming.ts";

export interface GkeClusterProgramArgs {
  gke: GkeSettings;
  runId: string;
  /** The first arm's stack (both arms share the cluster), for the `inferbench-stack` label. */
  stack: string;
}

/**
 * The cluster's name: the stack's clusterName plus the run's time and random part, so two runs in
 * one project and zone never collide (GKE names: at most 40 characters).
 */
export function runClusterName(clusterName: string, runId: string): string {
  const suffix = runId.slice(9).replace(/-/g, "").toLowerCase();
  return `${clusterName.slice(0, 39 - suffix.length).replace(/[-.]+$/, "")}-${suffix}`;
}

/** The component's arguments: the stack's gke settings plus the run labels (pure, for preflight). */
export function gkeClusterPoolArgs(a: GkeClusterProgramArgs): GkeGpuPoolArgs {
  const g = a.gke;
  return {
    ...(g.project ? { project: g.project } : {}),
    location: g.location,
    clusterName: runClusterName(g.clusterName, a.runId),
    machineType: g.machineType,
    nodeCount: g.nodeCount,
    provisioningModel: g.provisioningModel,
    ...(g.reservation !== undefined ? { reservation: g.reservation } : {}),
    gpuDriverVersion: g.gpuDriverVersion,
    maxRunHours: g.maxRunHours,
    labels: vmLabels(a.runId, a.stack),
  };
}

/** Outputs: kubeconfig (secret: the Automation API hands it back decrypted), names, endpoint. */
export function gkeClusterProgram(a: GkeClusterProgramArgs): InlineProgram {
  return async () => {
    const pool = new GkeGpuPool("gpu", gkeClusterPoolArgs(a));
    return {
      kubeconfig: pool.kubeconfig,
      clusterName: pool.clusterName,
      location: pool.location,
      endpoint: pool.endpoint,
      nodePoolName: pool.nodePoolName,
    };
  };
}

/**
 * GkeGpuPool: a GKE Standard cluster without its default pool, one GPU node pool, and a
 * Kubernetes provider for it. Every decision (accelerators, provisioning model, pool shape,
 * kubeconfig) is an exported pure function; the component only wires resources.
 */
import * as gcp from "@pulumi/gcp";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { stringify } from "yaml";
import type { StackConfig } from "../stacks/schema.ts";

export type GkeSettings = StackConfig["gke"];

export interface GkeGpuPoolArgs {
  project?: string;
  /** A zone (us-central1-a). A region would multiply nodeCount by its zones (see gkePoolProblems). */
  location: string;
  clusterName: string;
  machineType: string;
  nodeCount: number;
  provisioningModel: GkeSettings["provisioningModel"];
  /** A specific Compute Engine reservation to consume (STANDARD only). */
  reservation?: string;
  gpuDriverVersion: GkeSettings["gpuDriverVersion"];
  /** Run labels: on the cluster, the node VMs and as Kubernetes node labels. */
  labels: Record<string, string>;
  /** Flex-start nodes are deleted after this long (see nodePoolArgs). */
  maxRunHours: number;
}

export interface MachineGpus {
  /** GKE accelerator type (guestAccelerators[].type). */
  type: string;
  count: number;
  /** Boot disk type the machine series supports. */
  diskType: "pd-ssd" | "hyperdisk-balanced";
}

const h100 = (count: number): MachineGpus => ({
  type: "nvidia-h100-80gb",
  count,
  diskType: "pd-ssd",
});
const l4 = (count: number): MachineGpus => ({ type: "nvidia-l4", count, diskType: "pd-ssd" });

/**
 * GPU machine types this kit models. GKE wants the accelerator named even where the machine
 * type bundles it: that is where the driver installation is configured. A3 Ultra has no
 * Persistent Disk support, only Hyperdisk.
 */
export const GKE_MACHINE_GPUS: Readonly<Record<string, MachineGpus>> = {
  "a3-highgpu-1g": h100(1),
  "a3-highgpu-2g": h100(2),
  "a3-highgpu-4g": h100(4),
  "a3-highgpu-8g": h100(8),
  "a3-megagpu-8g": { type: "nvidia-h100-mega-80gb", count: 8, diskType: "pd-ssd" },
  "a3-ultragpu-8g": { type: "nvidia-h200-141gb", count: 8, diskType: "hyperdisk-balanced" },
  "g2-standard-4": l4(1),
  "g2-standard-8": l4(1),
  "g2-standard-12": l4(1),
  "g2-standard-16": l4(1),
  "g2-standard-24": l4(2),
  "g2-standard-32": l4(1),
  "g2-standard-48": l4(4),
  "g2-standard-96": l4(8),
};

export function acceleratorFor(machineType: string): MachineGpus {
  const gpus = GKE_MACHINE_GPUS[machineType];
  if (!gpus) {
    throw new Error(
      `machine type ${machineType}: no GPU mapping for a GKE node pool; known machine types: ${Object.keys(GKE_MACHINE_GPUS).join(", ")}`,
    );
  }
  return gpus;
}

/** Zone: `<region>-<letter>`, e.g. us-central1-a; a region ends in a digit. */
export function isZone(location: string): boolean {
  return /^[a-z]+(-[a-z]+)+\d+-[a-z]$/.test(location);
}

function reservationProblem(model: GkeSettings["provisioningModel"]): string {
  return `gke.reservation is set with provisioningModel ${model}: only STANDARD nodes consume a reservation (Spot and flex-start VMs do not); drop one of them`;
}

/**
 * Refusals before anything is created. A regional cluster puts nodeCount nodes in each of the
 * region's zones: three times the GPUs (and the cost plan.ts estimated) for a benchmark that
 * needs one zone. GKE cluster names: ≤ 40 chars, a letter first, no dots.
 */
export function gkePoolProblems(args: GkeGpuPoolArgs): string[] {
  const problems: string[] = [];
  if (!isZone(args.location))
    problems.push(
      `gke.location = ${args.location} is not a zone: a regional node pool gets gke.nodeCount nodes in every zone of the region; give a zone such as ${args.location}-a`,
    );
  if (!/^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/.test(args.clusterName))
    problems.push(
      `gke.clusterName = ${args.clusterName}: GKE wants ≤ 40 lowercase letters, digits or '-', a letter first`,
    );
  if (args.reservation !== undefined && args.provisioningModel !== "STANDARD")
    problems.push(reservationProblem(args.provisioningModel));
  try {
    acceleratorFor(args.machineType);
  } catch (err) {
    problems.push((err as Error).message);
  }
  return problems;
}

/** What nodePoolArgs decides, as plain data (tsc checks it against gcp.container.NodePoolArgs). */
export interface NodeConfigSpec {
  machineType: string;
  guestAccelerators: {
    type: string;
    count: number;
    gpuDriverInstallationConfig: { gpuDriverVersion: string };
  }[];
  diskSizeGb: number;
  diskType: string;
  gvnic: { enabled: boolean };
  oauthScopes: string[];
  labels: Record<string, string>;
  resourceLabels: Record<string, string>;
  spot?: boolean;
  flexStart?: boolean;
  maxRunDuration?: string;
  reservationAffinity?: { consumeReservationType: string; key?: string; values?: string[] };
}

export interface NodePoolSpec {
  name: string;
  location: string;
  project?: string;
  /** Fixed size (STANDARD, SPOT); exclusive with autoscaling. */
  nodeCount?: number;
  initialNodeCount?: number;
  autoscaling?: { totalMinNodeCount: number; totalMaxNodeCount: number; locationPolicy: string };
  management: { autoRepair: boolean; autoUpgrade: boolean };
  upgradeSettings: { maxSurge: number; maxUnavailable: number };
  nodeConfig: NodeConfigSpec;
}

/**
 * vLLM images unpack to 20+ GB, and engines cache model weights on the node's ephemeral storage
 * (the boot disk): the shipped gke-managed stack alone is ~150 GB of weights across its replicas.
 */
export const BOOT_DISK_GB = 500;

/**
 * The node VMs. Taints: none set here. GKE taints GPU nodes nvidia.com/gpu=present:NoSchedule
 * itself whenever the cluster has non-GPU nodes, and its ExtendedResourceToleration admission
 * gives pods that request nvidia.com/gpu the matching toleration; a taint of our own would make
 * Pulumi and GKE fight over the field.
 */
export function nodeConfigFor(args: GkeGpuPoolArgs): NodeConfigSpec {
  const gpus = acceleratorFor(args.machineType);
  const model = args.provisioningModel;
  if (args.reservation !== undefined && model !== "STANDARD")
    throw new Error(reservationProblem(model));
  return {
    machineType: args.machineType,
    guestAccelerators: [
      {
        type: gpus.type,
        count: gpus.count,
        gpuDriverInstallationConfig: { gpuDriverVersion: args.gpuDriverVersion },
      },
    ],
    diskSizeGb: BOOT_DISK_GB,
    diskType: gpus.diskType,
    // A3 (and every machine above 100 Gbps) has no VirtIO NIC.
    gvnic: { enabled: true },
    // GPU driver installation and image pulls from Artifact Registry need more than the defaults.
    oauthScopes: ["https://www.googleapis.com/auth/cloud-platform"],
    labels: { ...args.labels },
    resourceLabels: { ...args.labels },
    ...(model === "SPOT" ? { spot: true } : {}),
    // Flex-start (Dynamic Workload Scheduler) VMs never draw from reservations, and run at most
    // maxRunDuration: the dead-man switch GKE offers. STANDARD/Spot nodes get none: their managed
    // instance group would just recreate a node deleted on time, restarting the engines.
    ...(model === "FLEX_START"
      ? {
          flexStart: true,
          maxRunDuration: `${Math.round(args.maxRunHours * 3600)}s`,
          reservationAffinity: { consumeReservationType: "NO_RESERVATION" },
        }
      : {}),
    ...(args.reservation !== undefined
      ? {
          reservationAffinity: {
            consumeReservationType: "SPECIFIC_RESERVATION",
            key: "compute.googleapis.com/reservation-name",
            values: [args.reservation],
          },
        }
      : {}),
  };
}

/**
 * The node pool, less its cluster. Size: STANDARD and Spot pools hold nodeCount nodes. A
 * flex-start pool is created empty with autoscaling 0..nodeCount (location policy ANY): GKE
 * requests flex-start VMs only when pods are pending for them. Queued provisioning is not
 * enabled: it hands nodes out only through ProvisioningRequests, and engines are plain pods.
 * Management: no auto-upgrade, so no upgrade drains engines mid-run (the cluster is then off the
 * release channels: GKE refuses auto-upgrade off on an enrolled cluster). Auto-repair stays on
 * except on flex-start, whose pools GKE documents with it off (a repaired node would be a new
 * capacity request, not a restart).
 * Upgrades (config changes) replace nodes one at a time without a surge node: a spare 8-GPU
 * machine is rarely available and would double the bill while it lasts.
 */
export function nodePoolArgs(args: GkeGpuPoolArgs): NodePoolSpec {
  const flex = args.provisioningModel === "FLEX_START";
  return {
    name: "gpu",
    location: args.location,
    ...(args.project ? { project: args.project } : {}),
    ...(flex
      ? {
          initialNodeCount: 0,
          autoscaling: {
            totalMinNodeCount: 0,
            totalMaxNodeCount: args.nodeCount,
            locationPolicy: "ANY",
          },
        }
      : { nodeCount: args.nodeCount }),
    management: { autoRepair: !flex, autoUpgrade: false },
    upgradeSettings: { maxSurge: 0, maxUnavailable: 1 },
    nodeConfig: nodeConfigFor(args),
  };
}

/**
 * The cluster: its default pool (GKE needs one to exist at creation) is removed at once, so
 * nodes come only from the GPU pool. No deletion protection: every run destroys its cluster.
 */
export function clusterArgs(args: GkeGpuPoolArgs) {
  return {
    name: args.clusterName,
    location: args.location,
    ...(args.project ? { project: args.project } : {}),
    removeDefaultNodePool: true,
    initialNodeCount: 1,
    deletionProtection: false,
    // Node auto-upgrade can be turned off only outside the release channels.
    releaseChannel: { channel: "UNSPECIFIED" },
    resourceLabels: { ...args.labels },
  } satisfies gcp.container.ClusterArgs;
}

/**
 * Kubeconfig for the cluster, authenticating through gke-gcloud-auth-plugin (the operator's
 * gcloud credentials): no token or client key is ever written into it or into Pulumi state.
 * `caCertificate` is masterAuth.clusterCaCertificate (already base64).
 */
export function gkeKubeconfig(c: { name: string; endpoint: string; caCertificate: string }) {
  if (!c.endpoint) throw new Error(`cluster ${c.name}: no endpoint yet`);
  if (!c.caCertificate) throw new Error(`cluster ${c.name}: no CA certificate yet`);
  const server = /^https?:\/\//.test(c.endpoint) ? c.endpoint : `https://${c.endpoint}`;
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      { name: c.name, cluster: { server, "certificate-authority-data": c.caCertificate } },
    ],
    contexts: [{ name: c.name, context: { cluster: c.name, user: c.name } }],
    "current-context": c.name,
    users: [
      {
        name: c.name,
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1beta1",
            command: "gke-gcloud-auth-plugin",
            installHint:
              "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin",
            provideClusterInfo: true,
          },
        },
      },
    ],
  });
}

export class GkeGpuPool extends pulumi.ComponentResource {
  readonly cluster: gcp.container.Cluster;
  readonly nodePool: gcp.container.NodePool;
  readonly provider: k8s.Provider;
  readonly clusterName: pulumi.Output<string>;
  readonly location: pulumi.Output<string>;
  readonly endpoint: pulumi.Output<string>;
  /** Secret: it names no credential, but kubeconfig contents are secret throughout the kit. */
  readonly kubeconfig: pulumi.Output<string>;
  readonly nodePoolName: pulumi.Output<string>;

  constructor(name: string, args: GkeGpuPoolArgs, opts?: pulumi.ComponentResourceOptions) {
    super("inferbench:gke:GkeGpuPool", name, {}, opts);
    const problems = gkePoolProblems(args);
    if (problems.length) throw new pulumi.ResourceError(problems.join("; "), this);

    const cluster = new gcp.container.Cluster(`${name}-cluster`, clusterArgs(args), {
      parent: this,
      customTimeouts: { create: "30m", delete: "30m" },
    });
    const nodePool = new gcp.container.NodePool(
      `${name}-gpu`,
      { ...nodePoolArgs(args), cluster: cluster.name },
      // Flex-start and scarce GPU capacity can take a while to arrive.
      { parent: this, customTimeouts: { create: "60m", update: "60m", delete: "30m" } },
    );

    // gcloud's context name, so kubectl contexts match `gcloud container clusters get-credentials`.
    const kubeconfig = pulumi
      .all([cluster.project, cluster.location, cluster.name, cluster.endpoint, cluster.masterAuth])
      .apply(([project, location, clusterName, endpoint, auth]) =>
        gkeKubeconfig({
          name: `gke_${project}_${location}_${clusterName}`,
          endpoint,
          caCertificate: auth.clusterCaCertificate,
        }),
      );
    this.kubeconfig = pulumi.secret(kubeconfig);
    // dependsOn the pool: whatever is created through this provider waits until the GPU pool
    // exists, instead of timing out on pods that a pool-less cluster can never schedule.
    this.provider = new k8s.Provider(
      `${name}-k8s`,
      { kubeconfig: this.kubeconfig },
      { parent: this, dependsOn: [nodePool] },
    );

    this.cluster = cluster;
    this.nodePool = nodePool;
    this.clusterName = cluster.name;
    this.location = cluster.location;
    this.endpoint = cluster.endpoint;
    this.nodePoolName = nodePool.name;
    this.registerOutputs({
      clusterName: this.clusterName,
      location: this.location,
      endpoint: this.endpoint,
      kubeconfig: this.kubeconfig,
      nodePoolName: this.nodePoolName,
    });
  }
}

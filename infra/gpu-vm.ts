/**
 * GpuVm: one GCP GPU VM with its own network, SSH-only firewall, dead-man switch and a host key
 * the operator knows before the first connection. Decisions (scheduling, accelerators, labels,
 * metadata) are pure exported functions; the component only wires resources.
 */
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import type { StackConfig } from "../stacks/schema.ts";
import { labelValue, namePrefix, vmLabels } from "./naming.ts";
import { sshRangeProblems, WHERE_TO_SET } from "./ssh-ranges.ts";
import { HOST_KEY_METADATA_KEY, renderStartupScript } from "./startup-script.ts";

export { labelValue, vmLabels };

export type GcpSettings = StackConfig["gcp"];

export interface GpuVmArgs {
  runId: string;
  stack: string;
  gcp: GcpSettings;
  /** Zone to create the VM in (one of gcp.zones). */
  zone: string;
  /** Generated login public key line (`ssh-ed25519 …`); gcp.sshPublicKey is added beside it. */
  sshPublicKey: pulumi.Input<string>;
  /** Host private key (OpenSSH) — secret; delivered through instance metadata. */
  hostPrivateKey: pulumi.Input<string>;
  /** Host public key line: what the operator verifies. */
  hostPublicKey: string;
  /** False for GPU-less rehearsal machines. */
  requireGpu?: boolean;
  /** Absolute deadline (RFC 3339): the VM is deleted then, whatever restarts happened. */
  deadline?: string;
}

/**
 * Scheduling: GPU VMs cannot live-migrate (TERMINATE on host maintenance); every VM is deleted by
 * GCE itself at a time limit, so it outlives a crashed operator by at most `maxRunHours`.
 * With a deadline, the limit is absolute (terminationTime): a maxRunDuration restarts counting
 * whenever the VM is stopped and started again, which an automatic restart after a host error
 * does. GCE takes the limit as either a duration or a time, so the deadline replaces the
 * duration — except on FLEX_START, which requires maxRunDuration and never restarts by itself.
 */
export function schedulingFor(
  model: GcpSettings["provisioningModel"],
  maxRunHours: number,
  deadline?: string,
) {
  const limit =
    deadline && model !== "FLEX_START"
      ? { terminationTime: deadline }
      : { maxRunDuration: { seconds: Math.round(maxRunHours * 3600) } };
  const base = {
    onHostMaintenance: "TERMINATE",
    provisioningModel: model,
    ...limit,
    instanceTerminationAction: "DELETE",
  };
  if (model === "SPOT") return { ...base, preemptible: true, automaticRestart: false };
  if (model === "FLEX_START") return { ...base, automaticRestart: false };
  return { ...base, automaticRestart: true };
}

/** The deadline must lie within the dead-man switch's hours (and in the future) to be believed. */
export function checkDeadline(
  deadline: string,
  maxRunHours: number,
  now = new Date(),
): string | undefined {
  const t = Date.parse(deadline);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(deadline) || !Number.isFinite(t))
    return `deadline ${deadline} is not an RFC 3339 UTC time (YYYY-MM-DDThh:mm:ssZ)`;
  if (t <= now.getTime()) return `deadline ${deadline} has passed; start a new run`;
  if (t > now.getTime() + maxRunHours * 3_600_000 + 60_000)
    return `deadline ${deadline} is more than gcp.maxRunHours (${maxRunHours} h) away`;
  return undefined;
}

/**
 * GPU families that bundle their GPUs in the machine type (a2, a3, a4, g2) need no
 * guestAccelerators; N1 needs them, with GPU types (T4, V100, P100) this kit does not model.
 * Other families have no GPU: allowed only for a zero-GPU rehearsal.
 */
export function guestAcceleratorsFor(machineType: string, requireGpu = true): [] {
  if (/^(a2|a3|a4|g2|g4)-/.test(machineType)) return [];
  if (/^n1-/.test(machineType)) {
    throw new Error(
      `machine type ${machineType}: N1 + attached GPUs is not modelled; use a GPU-bundling family (a2, a3, a4, g2)`,
    );
  }
  if (requireGpu) {
    throw new Error(
      `machine type ${machineType} has no GPUs; use a3-highgpu-8g (or rehearsal=true for engine-sim)`,
    );
  }
  return [];
}

export function vmMetadata(
  sshUser: string,
  sshPublicKeys: string[],
  hostPrivateKey: string,
  startupScript: string,
) {
  return {
    "startup-script": startupScript,
    "ssh-keys": sshPublicKeys.map((k) => `${sshUser}:${k.trim()}`).join("\n"),
    // Metadata SSH keys are ignored under OS Login; the key above is the only way in.
    "enable-oslogin": "FALSE",
    "block-project-ssh-keys": "TRUE",
    // Deep Learning VM images install the NVIDIA driver at first boot when asked to.
    "install-nvidia-driver": "True",
    [HOST_KEY_METADATA_KEY]: hostPrivateKey,
  };
}

export class GpuVm extends pulumi.ComponentResource {
  readonly instance: gcp.compute.Instance;
  readonly instanceName: pulumi.Output<string>;
  readonly zone: pulumi.Output<string>;
  readonly externalIp: pulumi.Output<string>;
  readonly networkName: pulumi.Output<string>;
  readonly hostPublicKey: pulumi.Output<string>;

  constructor(name: string, args: GpuVmArgs, opts?: pulumi.ComponentResourceOptions) {
    super("inferbench:gcp:GpuVm", name, {}, opts);
    const g = args.gcp;
    if (!g.zones.includes(args.zone)) {
      throw new pulumi.ResourceError(
        `zone ${args.zone} is not one of gcp.zones (${g.zones.join(", ")})`,
        this,
      );
    }
    if (g.sshSourceRanges.length === 0) {
      throw new pulumi.ResourceError("gcp.sshSourceRanges is empty: refusing to open SSH", this);
    }
    const ranges = sshRangeProblems(g.sshSourceRanges);
    if (ranges.length)
      throw new pulumi.ResourceError(
        `${ranges.map((r) => r.message).join("; ")}; ${WHERE_TO_SET}`,
        this,
      );
    const late = args.deadline ? checkDeadline(args.deadline, g.maxRunHours) : undefined;
    if (late) throw new pulumi.ResourceError(late, this);
    let accelerators: [];
    try {
      accelerators = guestAcceleratorsFor(g.machineType, args.requireGpu ?? true);
    } catch (err) {
      throw new pulumi.ResourceError((err as Error).message, this);
    }
    const labels = vmLabels(args.runId, args.stack);
    const prefix = namePrefix(g.networkName, args.runId);
    const provider = g.project ? { project: g.project } : {};

    const network = new gcp.compute.Network(
      `${name}-net`,
      { name: `${prefix}-net`, autoCreateSubnetworks: false, ...provider },
      { parent: this },
    );
    const subnet = new gcp.compute.Subnetwork(
      `${name}-subnet`,
      {
        name: `${prefix}-subnet`,
        network: network.id,
        region: g.region,
        ipCidrRange: "10.128.0.0/20",
        ...provider,
      },
      { parent: this },
    );
    new gcp.compute.Firewall(
      `${name}-ssh`,
      {
        name: `${prefix}-ssh`,
        network: network.id,
        direction: "INGRESS",
        allows: [{ protocol: "tcp", ports: ["22"] }],
        sourceRanges: [...g.sshSourceRanges],
        targetTags: ["inferbench"],
        ...provider,
      },
      { parent: this },
    );

    const startupScript = renderStartupScript({
      sshUser: g.sshUser,
      requireGpu: args.requireGpu ?? true,
    });
    const metadata = pulumi
      .all([args.sshPublicKey, args.hostPrivateKey])
      .apply(([pub, hostKey]) =>
        vmMetadata(
          g.sshUser,
          g.sshPublicKey ? [pub, g.sshPublicKey] : [pub],
          hostKey,
          startupScript,
        ),
      );

    const instance = new gcp.compute.Instance(
      `${name}-vm`,
      {
        name: `${prefix}-vm`,
        zone: args.zone,
        machineType: g.machineType,
        tags: ["inferbench"],
        labels,
        bootDisk: {
          autoDelete: true,
          initializeParams: {
            image: `projects/${g.imageProject}/global/images/family/${g.imageFamily}`,
            size: g.diskSizeGb,
            type: "pd-ssd",
            labels,
          },
        },
        // gVNIC: A3 (and every machine with more than 100 Gbps) has no VirtIO NIC.
        networkInterfaces: [{ subnetwork: subnet.id, accessConfigs: [{}], nicType: "GVNIC" }],
        ...(accelerators.length ? { guestAccelerators: accelerators } : {}),
        scheduling: schedulingFor(g.provisioningModel, g.maxRunHours, args.deadline),
        ...(g.provisioningModel === "FLEX_START"
          ? { reservationAffinity: { type: "NO_RESERVATION" } }
          : {}),
        // metadata holds the host private key: keep the whole map secret in state and outputs.
        metadata: pulumi.secret(metadata),
        allowStoppingForUpdate: true,
        ...provider,
      },
      { parent: this, customTimeouts: { create: "30m", delete: "20m" } },
    );

    this.instance = instance;
    this.instanceName = instance.name;
    this.zone = instance.zone;
    this.externalIp = instance.networkInterfaces.apply(
      (nis) => nis[0]?.accessConfigs?.[0]?.natIp ?? "",
    );
    this.networkName = network.name;
    this.hostPublicKey = pulumi.output(args.hostPublicKey);
    this.registerOutputs({
      instanceName: this.instanceName,
      zone: this.zone,
      externalIp: this.externalIp,
      networkName: this.networkName,
      hostPublicKey: this.hostPublicKey,
    });
  }
}

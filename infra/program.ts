/**
 * The Pulumi program (the Automation API's inline program and `pulumi up` alike): stack config →
 * zod → plan() → for gcp-vm GpuVm (+ ComposeDeployment), for ssh a ComposeDeployment on the
 * existing host → outputs. No secret reaches a plain output.
 *
 * Besides the StackConfig keys, the program reads run keys that `inferbench run` (preflight)
 * writes into the stack's config (see RUN_KEYS): the run id, the zone to try, and the SSH keys
 * generated with node:crypto — the login private key and the host private key as Pulumi secrets.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { bundleHash } from "../compose/bundle.ts";
import { readDatasetFiles } from "../compose/datasets.ts";
import { renderCompose } from "../compose/render.ts";
import { renderOptionsOf } from "../kube/options.ts";
import { type KubeObject, renderKubeArm } from "../kube/render.ts";
import { validateKubeObjects } from "../kube/validate.ts";
import { PROJECT, validateConfig } from "../stacks/config.ts";
import { plan as buildPlan } from "../stacks/plan.ts";
import type { StackPlan } from "../stacks/plan-types.ts";
import { type StackConfig, stackConfigSchema } from "../stacks/schema.ts";
import { ComposeDeployment } from "./deploy.ts";
import { gatedModelIndexes } from "./gated-models.ts";
import { GpuVm } from "./gpu-vm.ts";
import { deployKubeArm } from "./kube-workloads.ts";
import { RUN_KEYS } from "./program-keys.ts";
import { DEFAULT_REMOTE_ROOT } from "./startup-script.ts";

export { RUN_KEYS };

export type ProgramOutputs = {
  /** Compose targets (gcp-vm, ssh): how a person reaches the host. */
  sshUser?: string;
  sshCommand?: pulumi.Output<string> | string;
  hostPublicKey?: pulumi.Output<string> | string;
  runId: string;
  resultsPath: string;
  hourlyCostUsd: number | undefined;
  maxRunCostUsd: number | undefined;
  costBasis: string | undefined;
  arm: string;
  emulated: boolean;
  /** Compose targets: the uploaded bundle's hash. */
  bundleHash?: string;
  /** kubeconfig: the arm's namespace in the cluster. */
  namespace?: pulumi.Output<string>;
  /** gcp-vm: the VM. */
  instance?: pulumi.Output<string>;
  /** gcp-vm: GCE's creation time of the VM, where the billing window starts. */
  createdAt?: pulumi.Output<string>;
  zone?: pulumi.Output<string>;
  externalIp?: pulumi.Output<string>;
  /** ssh: the existing host deployed to. */
  host?: string;
};

/** The arm's compose bundle: what the deployment uploads, and its hash. */
interface Bundle {
  rendered: ReturnType<typeof renderCompose>;
  hash: string;
}

/** Reads the StackConfig keys from pulumi.Config (secrets through getSecret) and validates them. */
export function readStackConfig(
  cfg: pulumi.Config,
  stack: string,
): {
  config: StackConfig;
  /** Secret either way: from `pulumi config set --secret hfToken`, else env HF_TOKEN, else "". */
  hfToken: pulumi.Output<string>;
  hasHfToken: boolean;
} {
  const keys = Object.keys(stackConfigSchema.shape);
  const values: Record<string, unknown> = {};
  for (const k of keys) {
    if (k === "hfToken") continue;
    const raw = cfg.get(k);
    if (raw === undefined) continue;
    try {
      values[k] = JSON.parse(raw);
    } catch {
      values[k] = raw; // plain strings (target, mode)
    }
  }
  let config: StackConfig;
  try {
    config = validateConfig(values, `Pulumi.${stack}.yaml`);
  } catch (err) {
    throw new pulumi.RunError((err as Error).message);
  }
  const secret = cfg.getSecret("hfToken");
  const hfToken = secret ?? pulumi.secret(process.env.HF_TOKEN ?? "");
  return { config, hfToken, hasHfToken: secret !== undefined || !!process.env.HF_TOKEN };
}

/** A gated model without a token is refused before any resource is registered. */
export function requireTokenFor(config: StackConfig, p: StackPlan, hasToken: boolean): void {
  if (hasToken || p.emulated) return;
  const gated = gatedModelIndexes(config.models);
  if (gated.length)
    throw new pulumi.RunError(
      `${gated.map((i) => `models[${i}].hfPath = ${config.models[i]!.hfPath}`).join(", ")}: gated on Hugging Face and no token is set; ` +
        `run \`pulumi config set --secret hfToken\` (or export HF_TOKEN) after accepting the model's licence`,
    );
}

export function requireRunKey(cfg: pulumi.Config, key: string, secret: boolean) {
  const v = secret ? cfg.getSecret(key) : cfg.get(key);
  if (v === undefined) {
    throw new pulumi.RunError(
      `config ${PROJECT}:${key} is missing. \`inferbench run\` generates it in its own per-run stack; ` +
        "for `pulumi up` by hand, set the run keys yourself: `ssh-keygen -t ed25519 -N '' -f login && ssh-keygen -t ed25519 -N '' -f host`, then " +
        `\`pulumi config set --secret ${RUN_KEYS.sshPrivateKey} -- "$(cat login)"\`, \`pulumi config set ${RUN_KEYS.sshPublicKey} -- "$(cat login.pub)"\`, ` +
        `\`pulumi config set --secret ${RUN_KEYS.hostPrivateKey} -- "$(cat host)"\`, \`pulumi config set ${RUN_KEYS.hostPublicKey} -- "$(cat host.pub)"\` (infra/README.md, "pulumi up by hand")`,
    );
  }
  return v;
}

export function sshCommand(user: string, ip: string, runId: string): string {
  return `ssh -i ~/.inferbench/${runId}/id_ed25519 -o UserKnownHostsFile=~/.inferbench/${runId}/known_hosts -o StrictHostKeyChecking=yes ${user}@${ip}`;
}

export function program(): ProgramOutputs {
  const stack = pulumi.getStack();
  const cfg = new pulumi.Config(PROJECT);
  const { config, hfToken, hasHfToken } = readStackConfig(cfg, stack);
  if (config.target !== "gcp-vm" && config.target !== "ssh" && config.target !== "kubeconfig") {
    throw new pulumi.RunError(
      `stack ${stack}: target ${config.target} is not deployed by this program (gcp-vm, ssh and kubeconfig only; gke runs through \`inferbench run\`, and an endpoint is already running: \`inferbench run\` measures it)`,
    );
  }
  let p: StackPlan;
  let datasets: Record<string, string>;
  try {
    p = buildPlan(stack, config);
    datasets = readDatasetFiles(p);
  } catch (err) {
    throw new pulumi.RunError((err as Error).message);
  }
  requireTokenFor(config, p, hasHfToken);
  if (config.target === "kubeconfig")
    return kubeconfigProgram(stack, cfg, config, p, hasHfToken ? hfToken : undefined);
  const rendered = renderCompose(p, {
    allowUnpinnedImages: config.run.allowUnpinnedImages,
    datasets,
  });
  const bundle = { rendered, hash: bundleHash(rendered.files) };
  const runId = cfg.get(RUN_KEYS.runId) ?? `${stack}-manual`;
  const common = {
    runId,
    resultsPath: `results/runs/${runId}/`,
    arm: p.mode,
    emulated: p.emulated,
    bundleHash: bundle.hash,
  };
  return config.target === "ssh"
    ? { ...common, ...sshHostProgram(config, p, bundle, hfToken) }
    : { ...common, ...gcpVmProgram(stack, cfg, config, p, bundle, hfToken, runId) };
}

type TargetOutputs = Omit<
  ProgramOutputs,
  "runId" | "resultsPath" | "arm" | "emulated" | "bundleHash"
>;

/** ssh: nothing to provision; the arm is deployed on the existing host after its checks. */
function sshHostProgram(
  config: StackConfig,
  p: StackPlan,
  bundle: Bundle,
  hfToken: pulumi.Output<string>,
): TargetOutputs {
  const s = config.ssh;
  let privateKey: pulumi.Output<string> | string = "";
  if (s.keyFile) {
    try {
      privateKey = pulumi.secret(readFileSync(s.keyFile, "utf8"));
    } catch (err) {
      throw new pulumi.RunError(
        `ssh.keyFile: cannot read ${s.keyFile} (${(err as NodeJS.ErrnoException).code ?? err}); point it at the host's private key, or leave it out to use the SSH agent`,
      );
    }
  } else if (!process.env.SSH_AUTH_SOCK) {
    throw new pulumi.RunError(
      "ssh.keyFile is not set and no SSH agent is running (SSH_AUTH_SOCK): set ssh.keyFile, or start ssh-agent and ssh-add the key",
    );
  }
  new ComposeDeployment(
    "inferbench-compose",
    {
      host: s.host!,
      port: s.port,
      user: s.user,
      privateKey,
      ...(s.keyFile ? {} : { agent: true }),
      hostPublicKey: s.hostKey!,
      remoteRoot: s.remoteRoot,
      projectName: bundle.rendered.projectName,
      files: bundle.rendered.files,
      bundleHash: bundle.hash,
      hfToken,
      waitTimeoutSec: bundle.rendered.waitTimeoutSec,
      readyTimeoutSec: 120,
      startupMarker: false,
      hostChecks: {
        gpuIds: [...new Set(p.engines.flatMap((e) => e.gpus))],
        rehearsal: config.rehearsal,
      },
    },
    { customTimeouts: { create: "90m", update: "90m" } },
  );
  return {
    host: s.host!,
    sshUser: s.user,
    sshCommand: `ssh -p ${s.port} ${s.user}@${s.host}`,
    hostPublicKey: s.hostKey!,
    hourlyCostUsd: s.hourlyUsd,
    maxRunCostUsd: undefined,
    costBasis:
      s.hourlyUsd !== undefined ? "ssh.hourlyUsd (the stated price of the host)" : undefined,
  };
}

/** gcp-vm: the VM (GpuVm), then the arm on it unless the CLI deploys itself (RUN_KEYS.deploy). */
function gcpVmProgram(
  stack: string,
  cfg: pulumi.Config,
  config: StackConfig,
  p: StackPlan,
  bundle: Bundle,
  hfToken: pulumi.Output<string>,
  runId: string,
): TargetOutputs {
  const deadline = cfg.get(RUN_KEYS.deadline);
  const zone = cfg.get(RUN_KEYS.zone) ?? config.gcp.zones[0]!;
  const sshPublicKey = requireRunKey(cfg, RUN_KEYS.sshPublicKey, false) as string;
  const hostPublicKey = requireRunKey(cfg, RUN_KEYS.hostPublicKey, false) as string;
  const hostPrivateKey = requireRunKey(cfg, RUN_KEYS.hostPrivateKey, true);
  const sshPrivateKey = requireRunKey(cfg, RUN_KEYS.sshPrivateKey, true);

  const vm = new GpuVm("inferbench", {
    runId,
    stack,
    gcp: config.gcp,
    zone,
    sshPublicKey,
    hostPrivateKey,
    hostPublicKey,
    requireGpu: !p.emulated,
    ...(deadline ? { deadline } : {}),
  });

  // run.onProvision: false provisions the VM only (deploy later); `inferbench run` deploys itself.
  if (cfg.get(RUN_KEYS.deploy) !== "false" && config.run.onProvision) {
    new ComposeDeployment(
      "inferbench-compose",
      {
        host: vm.externalIp,
        port: 22,
        user: config.gcp.sshUser,
        privateKey: sshPrivateKey,
        hostPublicKey,
        remoteRoot: DEFAULT_REMOTE_ROOT,
        projectName: bundle.rendered.projectName,
        files: bundle.rendered.files,
        bundleHash: bundle.hash,
        hfToken,
        waitTimeoutSec: bundle.rendered.waitTimeoutSec,
        readyTimeoutSec: 1800,
        startupMarker: true,
      },
      { dependsOn: [vm], customTimeouts: { create: "90m", update: "90m" } },
    );
  }

  return {
    instance: vm.instanceName,
    createdAt: vm.instance.creationTimestamp,
    zone: vm.zone,
    externalIp: vm.externalIp,
    sshUser: config.gcp.sshUser,
    sshCommand: vm.externalIp.apply((ip) => sshCommand(config.gcp.sshUser, ip, runId)),
    hostPublicKey: vm.hostPublicKey,
    hourlyCostUsd: p.cost?.hourly,
    maxRunCostUsd: p.cost?.maxRunCost,
    costBasis: p.cost ? `${p.cost.basis} — estimate; ${p.cost.source}` : undefined,
  };
}

/**
 * kubeconfig by hand: the arm's servers (engines, router) in their namespace on an existing
 * cluster — the same objects and component `inferbench run` deploys, without the runner (the
 * benchmark is `inferbench run`). `pulumi destroy` deletes exactly these objects.
 */
function kubeconfigProgram(
  stack: string,
  cfg: pulumi.Config,
  config: StackConfig,
  p: StackPlan,
  hfToken: pulumi.Output<string> | undefined,
): ProgramOutputs {
  const runId = cfg.get(RUN_KEYS.runId) ?? `${stack}-manual`;
  const k = config.kubeconfig;
  let kubeconfig = typeof k.content === "string" ? k.content : undefined;
  const path =
    k.path ?? process.env.KUBECONFIG?.split(":")[0] ?? join(homedir(), ".kube", "config");
  if (kubeconfig === undefined) {
    try {
      kubeconfig = readFileSync(path, "utf8");
    } catch (err) {
      throw new pulumi.RunError(
        `kubeconfig: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? err}); set kubeconfig.path, export KUBECONFIG, or \`pulumi config set --secret --path kubeconfig.content "$(cat kc.yaml)"\``,
      );
    }
  }
  let objects: KubeObject[];
  try {
    objects = renderKubeArm(
      p,
      renderOptionsOf(config, runId, config.rehearsal || p.emulated, {
        hfToken: hfToken !== undefined,
      }),
    ).objects;
    validateKubeObjects(objects);
  } catch (err) {
    throw new pulumi.RunError((err as Error).message);
  }
  const w = deployKubeArm({
    objects,
    kubeconfig,
    ...(k.context ? { context: k.context } : {}),
    ...(hfToken ? { hfToken } : {}),
  });
  return {
    runId,
    resultsPath: `results/runs/${runId}/`,
    arm: p.mode,
    emulated: p.emulated || config.rehearsal,
    namespace: w.namespace,
    hourlyCostUsd: undefined,
    maxRunCostUsd: undefined,
    costBasis: undefined,
  };
}

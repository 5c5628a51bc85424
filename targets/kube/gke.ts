/**
 * gke: the cluster half of the target. open() creates a zonal GKE cluster with one GPU pool
 * (infra/gke-program.ts) as its own Pulumi stack `<run-id>-cluster`, next to the arms' stacks in
 * the run's pulumi/ folder; close() destroys it once the workloads are gone (with gcp-vm's
 * cancel → refresh → destroy retries); audit() looks for clusters and disks by the run label.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { StackOps } from "../../infra/automation.ts";
import { type GkeSettings, gkePoolProblems } from "../../infra/gke-pool.ts";
import { gkeClusterPoolArgs, gkeClusterProgram } from "../../infra/gke-program.ts";
import { labelValue } from "../../infra/naming.ts";
import { errorMessage, UserError } from "../../lib/errors.ts";
import { redactSecrets, registerSecret } from "../../lib/redact.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import { classifyUpError, destroyWithRetries, gpuQuotaNames } from "../gcp-vm/index.ts";
import type { Leftover, TargetContext } from "../types.ts";
import type { ClusterSource, KubeTargetDeps } from "./index.ts";

/** Finds what a run left in GCP by its `inferbench-run` label. */
export interface GkeAuditor {
  leftovers(runId: string, project?: string): Promise<Leftover[]>;
}

export interface GkeDeps {
  auditor: GkeAuditor;
  now: () => Date;
  sleep: (ms: number) => Promise<void>;
  destroyAttempts: number;
  destroyBackoffMs: number;
}

const RUN_LABEL = "inferbench-run";
/** GKE's own node label naming a node's pool. */
export const NODE_POOL_LABEL = "cloud.google.com/gke-nodepool";

const tail = (s: unknown) => (typeof s === "string" ? s.split("/").pop() : undefined);

/** `gcloud … list --format=json` rows as leftovers: a cluster's `location`, a disk's zone/region URL. */
export function parseGkeList(kind: "cluster" | "disk", json: string): Leftover[] {
  const rows = JSON.parse(json.trim() || "[]") as Array<Record<string, unknown>>;
  return rows.map((r) => {
    const location =
      (typeof r.location === "string" ? r.location : undefined) ?? tail(r.zone) ?? tail(r.region);
    return { kind, name: String(r.name), ...(location ? { location } : {}) };
  });
}

/** Node pools live inside their cluster (deleted with it), so clusters and disks are what is listed. */
export function gcloudGkeAuditor(
  run: (args: string[]) => Promise<string> = async (args) =>
    (await promisify(execFile)("gcloud", args, { maxBuffer: 16 << 20, timeout: 5 * 60_000 }))
      .stdout,
): GkeAuditor {
  return {
    async leftovers(runId, project) {
      const p = project ? [`--project=${project}`] : [];
      const v = labelValue(runId);
      const clusters = await run([
        "container",
        "clusters",
        "list",
        `--filter=resourceLabels.${RUN_LABEL}=${v}`,
        "--format=json",
        ...p,
      ]);
      const disks = await run([
        "compute",
        "disks",
        "list",
        `--filter=labels.${RUN_LABEL}=${v}`,
        "--format=json",
        ...p,
      ]);
      return [...parseGkeList("cluster", clusters), ...parseGkeList("disk", disks)];
    },
  };
}

/** Commands a person can paste: clusters first (their node disks go with them), then disks. */
export function gkeCleanupCommands(left: readonly Leftover[], project?: string): string[] {
  const p = project ? ` --project ${project}` : "";
  const where = (flag: string, l: Leftover) => (l.location ? ` ${flag} ${l.location}` : "");
  return [
    ...left
      .filter((l) => l.kind === "cluster")
      .map(
        (l) => `gcloud container clusters delete ${l.name}${where("--location", l)}${p} --quiet`,
      ),
    ...left
      .filter((l) => l.kind === "disk")
      .map((l) => `gcloud compute disks delete ${l.name}${where("--zone", l)}${p} --quiet`),
  ];
}

/**
 * What a failed cluster `up` means for GKE. gcp-vm's classifier recognises the errors; the hints
 * here are GKE's: one zone (gke.location), and STANDARD nodes have no time limit, so they draw on
 * the on-demand GPU quota only, while Spot and flex-start nodes use the preemptible one.
 */
export function classifyGkeUpError(
  message: string,
  gke: Pick<GkeSettings, "machineType" | "provisioningModel" | "location" | "nodeCount">,
): { kind: "capacity" | "unavailable" | "quota" | "other"; hint?: string } {
  const q = gpuQuotaNames(gke.machineType);
  const pool = gke.provisioningModel === "STANDARD" ? q.standard : q.preemptible;
  const region = gke.location.replace(/-[a-z]$/, "");
  // GKE words it "Insufficient regional quota … resource "NVIDIA_H100_GPUS""; GCE "Quota '…' exceeded".
  const named =
    /Quota '([A-Z0-9_]+)' exceeded/i.exec(message)?.[1] ??
    /quota[^"]*resource "([A-Z0-9_]+)"/i.exec(message)?.[1];
  const kind = /insufficient (regional |global )?quota/i.test(message)
    ? "quota"
    : classifyUpError(message, gke.provisioningModel, gke.machineType).kind;
  switch (kind) {
    case "quota":
      return {
        kind,
        hint: `${named ? `quota ${named} is exhausted. ` : ""}Request ${pool} (${gke.provisioningModel === "STANDARD" ? "on-demand" : "Spot and flex-start nodes use the preemptible pool"}) in ${region} in the console (IAM & Admin → Quotas), enough for gke.nodeCount = ${gke.nodeCount} × the GPUs of ${gke.machineType}; and GPUS_ALL_REGIONS as much`,
      };
    case "capacity":
      return {
        kind,
        hint: `no ${gke.machineType} capacity in ${gke.location} now: try another zone (gke.location; with ${pool} quota in its region), provisioningModel SPOT or FLEX_START (flex-start waits for capacity), or a reservation (gke.reservation)`,
      };
    case "unavailable":
      return {
        kind,
        hint: `${gke.machineType} is not offered in ${gke.location}; set gke.location to a zone that offers it (\`gcloud compute machine-types list --filter=name=${gke.machineType}\`)`,
      };
    default:
      return { kind: "other" };
  }
}

export function defaultGkeDeps(): GkeDeps {
  return {
    auditor: gcloudGkeAuditor(),
    now: () => new Date(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    destroyAttempts: 3,
    destroyBackoffMs: 15_000,
  };
}

/** The cluster source of the gke target (see the header). */
export function gkeCluster(
  config: StackConfig,
  stack: string,
  deps: Pick<KubeTargetDeps, "automation">,
  partial: Partial<GkeDeps> = {},
): ClusterSource {
  const d: GkeDeps = { ...defaultGkeDeps(), ...partial };
  const g = config.gke;
  let ops: StackOps | undefined;
  let upStarted = false;
  /** up failed or was interrupted: destroy cancels and refreshes first. */
  let failed = false;
  let removed = false;
  const project = (ctx: TargetContext) => ctx.store.readManifest().infra?.project ?? g.project;

  return {
    async open(ctx) {
      const runId = ctx.store.runId;
      if (!g.project)
        throw new UserError("gke: no GCP project for the cluster (gke.project is not set)", {
          hint: "--set gke.project=<project-id> (or `pulumi config set --path inferbench:gke.project <id>` in the stack)",
        });
      const programArgs = { gke: g, runId, stack };
      const problems = gkePoolProblems(gkeClusterPoolArgs(programArgs));
      if (problems.length)
        throw new UserError(`gke: ${problems.join("; ")}`, {
          hint: "fix the stack's gke section; nothing was created",
        });
      const workDir = join(ctx.store.dir, "pulumi");
      const name = `${runId}-cluster`;
      const cost = Object.values(ctx.plan.arms).find((p) => p?.stack === stack)?.cost;
      // Before anything exists in the cloud: `inferbench destroy` finds the stack after a crash.
      ctx.saveInfra({
        state: "provisioning",
        pulumiStack: name,
        workDir,
        project: g.project,
        zone: g.location,
        ...(cost ? { billing: { hourlyUsd: cost.hourly } } : {}),
      });
      ops = await deps.automation(gkeClusterProgram(programArgs)).stack(workDir, name);
      await ops.setConfig({ "gcp:project": { value: g.project } });
      ctx.log.info(
        `creating GKE cluster ${g.clusterName} in ${g.location} with ${g.nodeCount} × ${g.machineType} (${g.provisioningModel}); this takes 10+ minutes`,
      );
      let outputs: Record<string, unknown>;
      try {
        upStarted = true;
        outputs = await ops.up({
          signal: ctx.signal,
          hardSignal: ctx.hardSignal,
          onOutput: (l) => ctx.log.debug(redactSecrets(l.trimEnd())),
        });
      } catch (err) {
        failed = true; // close() still destroys whatever part of the cluster exists
        ctx.signal.throwIfAborted();
        const c = classifyGkeUpError(errorMessage(err), g);
        if (!c.hint) throw err;
        throw new UserError(`creating the GKE cluster failed: ${errorMessage(err)}`, {
          exitCode: 1,
          hint: c.hint,
        });
      }
      const kubeconfig = outputs.kubeconfig;
      if (typeof kubeconfig !== "string" || !kubeconfig.trim())
        throw new Error(`cluster stack ${name} gave no kubeconfig output`);
      registerSecret(kubeconfig);
      const pool = String(outputs.nodePoolName ?? "gpu");
      const created = typeof outputs.createTime === "string" ? Date.parse(outputs.createTime) : NaN;
      ctx.saveInfra({
        zone: String(outputs.location ?? g.location),
        billing: {
          ...ctx.store.readManifest().infra?.billing,
          start: new Date(Number.isFinite(created) ? created : d.now().getTime()).toISOString(),
        },
      });
      ctx.log.info(`GKE cluster ${String(outputs.clusterName ?? g.clusterName)} is up`);
      return {
        kubeconfig,
        source: `GKE cluster ${String(outputs.clusterName ?? g.clusterName)} (${g.location})`,
        nodeSelector: { [NODE_POOL_LABEL]: pool },
      };
    },

    async close(ctx) {
      if (!ops || removed) return true;
      if (!upStarted) {
        // The stack exists, nothing was ever submitted to GCP.
        await ops.remove().catch((err) => ctx.log.debug(`stack rm: ${errorMessage(err)}`));
        removed = true;
        return true;
      }
      ctx.log.info(`deleting GKE cluster ${g.clusterName} (${g.location}); this takes minutes`);
      const ok = await destroyWithRetries(
        ops,
        { ...d, log: ctx.log },
        { afterFailure: failed || ctx.signal.aborted },
      );
      removed = ok;
      ctx.saveInfra({
        billing: { ...ctx.store.readManifest().infra?.billing, end: d.now().toISOString() },
      });
      if (!ok)
        ctx.log.error(
          `the cluster stack could not be destroyed: \`inferbench destroy --run ${ctx.store.runId}\` retries it`,
        );
      return ok;
    },

    async audit(ctx) {
      if (!upStarted) return [];
      return d.auditor.leftovers(ctx.store.runId, project(ctx));
    },

    clusterRemains: () => !removed,

    cleanupCommands: (left) => gkeCleanupCommands(left, g.project),
  };
}

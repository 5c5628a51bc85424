/**
 * gcp-vm: provision a GCP GPU VM with the Pulumi Automation API (zone fallback, quota hints,
 * generated login and host keys), then run exactly as on any SSH-reached compose host
 * (targets/compose-host.ts). Destroy: cancel → refresh → destroy with retries; audit by label.
 * Side effects come in through `GcpVmDeps`, so the orchestration is tested with a fake
 * Automation API and a loopback SSH server.
 */
import { join } from "node:path";
import { waitForHostReady } from "../../compose/remote.ts";
import {
  type CleanupResult,
  cleanupCommands,
  gcloudAuditor,
  type LeftoverResource,
  type ResourceAuditor,
} from "../../infra/audit.ts";
import { type AutomationApi, localAutomation, type StackOps } from "../../infra/automation.ts";
import { namePrefix } from "../../infra/naming.ts";
import { RUN_KEYS } from "../../infra/program-keys.ts";
import { errorMessage, UserError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/logger.ts";
import { registerSecret } from "../../lib/redact.ts";
import { connectSsh, type RemoteHost, type SshTarget } from "../../lib/ssh/ssh.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import { composeHost } from "../compose-host.ts";
import { resolveHfToken } from "../hf-token.ts";
import type { Leftover, Target, TargetContext } from "../types.ts";
import {
  type ArmInput,
  ensureRunKeys,
  type PreflightReport,
  runPreflight,
  type TokenState,
  writeLocalSshFiles,
} from "./preflight/index.ts";

export interface GcpVmDeps {
  automation: AutomationApi;
  auditor: ResourceAuditor;
  connect: (t: SshTarget) => Promise<RemoteHost>;
  preflight: (arms: ArmInput[], extra: { hfToken: TokenState }) => PreflightReport;
  now: () => Date;
  sleep: (ms: number) => Promise<void>;
  /** Where ~/.inferbench/<run-id>/ ssh files go; undefined skips writing them. */
  sshFilesRoot?: string;
  readyTimeoutMs: number;
  destroyAttempts: number;
  destroyBackoffMs: number;
}

export function defaultGcpVmDeps(): GcpVmDeps {
  return {
    automation: localAutomation(),
    auditor: gcloudAuditor(),
    connect: connectSsh,
    preflight: (arms, extra) => runPreflight(arms, extra),
    now: () => new Date(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    sshFilesRoot: join(process.env.HOME ?? ".", ".inferbench"),
    readyTimeoutMs: 30 * 60_000,
    destroyAttempts: 3,
    destroyBackoffMs: 15_000,
  };
}

/** GCP's quota names for the GPUs of a machine family (on-demand pool, preemptible pool). */
export function gpuQuotaNames(machineType: string): { standard: string; preemptible: string } {
  const gpu = /^a3-ultra/.test(machineType)
    ? "NVIDIA_H200"
    : /^a3-/.test(machineType)
      ? "NVIDIA_H100"
      : /^a2-ultragpu/.test(machineType)
        ? "NVIDIA_A100_80GB"
        : /^a2-/.test(machineType)
          ? "NVIDIA_A100"
          : /^g2-/.test(machineType)
            ? "NVIDIA_L4"
            : "NVIDIA_H100";
  return { standard: `${gpu}_GPUS`, preemptible: `PREEMPTIBLE_${gpu}_GPUS` };
}

/**
 * What a failed `up` means and what to do: no capacity, or a machine type the zone does not
 * offer → next zone; quota → which quota to ask for, in which pool. A STANDARD VM with a time
 * limit and DELETE (the dead-man switch) may draw on either pool, so both are named for it.
 */
export function classifyUpError(
  message: string,
  model: StackConfig["gcp"]["provisioningModel"],
  machineType = "a3-highgpu-8g",
): { kind: "capacity" | "unavailable" | "quota" | "other"; hint?: string } {
  const q = gpuQuotaNames(machineType);
  const pools =
    model === "STANDARD"
      ? `${q.standard} (on-demand) — or ${q.preemptible}: a STANDARD GPU VM with a time limit and DELETE may use either pool`
      : `${q.preemptible} (SPOT and FLEX_START use the preemptible pool)`;
  if (
    /ZONE_RESOURCE_POOL_EXHAUSTED|does not have enough resources available|STOCKOUT|resource pool exhausted/i.test(
      message,
    )
  ) {
    return {
      kind: "capacity",
      hint: `no capacity in this zone; if every zone fails, list more zones in gcp.zones, request ${pools} in more regions, or try SPOT/FLEX_START`,
    };
  }
  if (
    /not offered in zone|does not exist in zone|not available in zone|is not supported in zone|machine type with name .* does not exist/i.test(
      message,
    )
  ) {
    return {
      kind: "unavailable",
      hint: `${machineType} is not offered in this zone; list zones that offer it in gcp.zones (\`gcloud compute machine-types list --filter=name=${machineType}\`)`,
    };
  }
  const named = /Quota '([A-Z0-9_]+)' exceeded/i.exec(message)?.[1];
  if (/QUOTA_EXCEEDED|Quota '.*' exceeded|quota.*exceeded/i.test(message)) {
    return {
      kind: "quota",
      hint: `${named ? `quota ${named} is exhausted. ` : ""}Request quota in the console (IAM & Admin → Quotas) in the region: ${pools}; and GPUS_ALL_REGIONS ≥ the machine's GPUs`,
    };
  }
  return { kind: "other" };
}

/**
 * The Pulumi config entries for one arm's StackConfig (objects as JSON). The HF token goes in as
 * a secret from its plaintext: a `{secure: …}` value from a stack file is another stack's
 * ciphertext, which this run's stack cannot decrypt.
 */
export function configEntries(
  config: StackConfig,
  opts: { hfToken?: string; project?: string } = {},
): Record<string, { value: string; secret?: boolean }> {
  const out: Record<string, { value: string; secret?: boolean }> = {};
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined || k === "hfToken") continue;
    out[k] = { value: typeof v === "string" ? v : JSON.stringify(v) };
  }
  const token = opts.hfToken ?? (typeof config.hfToken === "string" ? config.hfToken : undefined);
  if (token) out.hfToken = { value: token, secret: true };
  const project = opts.project ?? config.gcp.project;
  if (project) out["gcp:project"] = { value: project };
  return out;
}

/**
 * The run's absolute deadline (scheduling.terminationTime): kept from the stack config while it
 * is still ahead (a changed terminationTime would replace a running VM), else now + maxRunHours.
 */
export function runDeadline(existing: string | undefined, now: Date, maxRunHours: number): string {
  const ms = existing ? Date.parse(existing) : Number.NaN;
  if (Number.isFinite(ms) && ms > now.getTime() + 10 * 60_000) return existing!;
  return new Date(now.getTime() + Math.round(maxRunHours * 3600) * 1000)
    .toISOString()
    .replace(/\.\d{3}Z$/, "Z");
}

/**
 * Destroy with the recovery sequence for interrupted or failed updates:
 * cancel (frees the lock of an aborted update) → refresh (clearing pending creates) → destroy
 * (continue on error), retried with backoff. Returns whether a destroy succeeded.
 */
export async function destroyWithRetries(
  stack: StackOps,
  deps: Pick<GcpVmDeps, "sleep" | "destroyAttempts" | "destroyBackoffMs"> & { log: Logger },
  opts: { afterFailure: boolean },
): Promise<boolean> {
  const { log } = deps;
  if (opts.afterFailure) {
    try {
      await stack.cancel();
    } catch (err) {
      log.debug(`cancel: ${errorMessage(err)} (nothing to cancel)`);
    }
  }
  for (let attempt = 1; attempt <= deps.destroyAttempts; attempt++) {
    try {
      if (opts.afterFailure || attempt > 1) await stack.refresh({ clearPendingCreates: true });
    } catch (err) {
      log.warn(`refresh before destroy failed: ${errorMessage(err)}`);
    }
    try {
      await stack.destroy({ continueOnError: true });
      try {
        await stack.remove();
      } catch (err) {
        log.debug(`stack rm: ${errorMessage(err)}`);
      }
      return true;
    } catch (err) {
      log.warn(`destroy attempt ${attempt}/${deps.destroyAttempts} failed: ${errorMessage(err)}`);
      if (attempt < deps.destroyAttempts) await deps.sleep(deps.destroyBackoffMs * attempt);
    }
  }
  return false;
}

/** The billing window starts at GCE's own creation time of the VM when the outputs carry it. */
export function billingStart(outputs: Record<string, unknown>, now: Date): string {
  const t = typeof outputs.createdAt === "string" ? Date.parse(outputs.createdAt) : Number.NaN;
  return new Date(Number.isFinite(t) ? t : now.getTime()).toISOString();
}

/**
 * After a failed destroy: delete what the audit finds by the run's label and name prefix, with
 * gcloud, so that a VM does not keep billing until someone reads the log; then audit again.
 */
export async function cleanupAfterFailedDestroy(
  runId: string,
  where: { project?: string; namePrefix: string },
  auditor: ResourceAuditor,
  log: Logger,
): Promise<{ results: CleanupResult[]; left: LeftoverResource[] }> {
  const found = await auditor.leftovers(runId, where);
  if (!found.length || !auditor.remove) return { results: [], left: found };
  log.warn(
    `destroy failed; deleting what is labelled ${runId}: ${found.map((l) => `${l.kind} ${l.name}`).join(", ")}`,
  );
  const results = await auditor.remove(found, where.project);
  for (const r of results)
    (r.ok ? log.info : log.error)(
      `${r.ok ? "ok" : "FAILED"}: ${r.command}${r.error ? ` (${r.error})` : ""}`,
    );
  return { results, left: await auditor.leftovers(runId, where) };
}

export function gcpVmTarget(
  configs: Record<string, StackConfig>,
  partial: Partial<GcpVmDeps> = {},
): Target {
  const deps: GcpVmDeps = { ...defaultGcpVmDeps(), ...partial };
  const arms = Object.keys(configs);
  const first = configs[arms[0]!]!;
  const gcp = first.gcp;
  let stack: StackOps | undefined;
  let upStarted = false;
  let failed = false;
  let host: RemoteHost | undefined;
  let hfToken = typeof first.hfToken === "string" ? first.hfToken : undefined;
  if (hfToken) registerSecret(hfToken);
  const onHost = composeHost(
    () => {
      if (!host) throw new Error("the VM is not connected");
      return host;
    },
    {
      get hfToken() {
        return hfToken;
      },
      allowUnpinnedImages: first.run.allowUnpinnedImages,
    },
  );
  const guard = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      failed = true;
      throw err;
    }
  };
  /** Project and network as this run resolved and stored them (the manifest outlives config). */
  const where = (ctx: TargetContext) => {
    const infra = ctx.store.readManifest().infra;
    const project = infra?.project ?? gcp.project;
    return {
      ...(project ? { project } : {}),
      namePrefix: namePrefix(infra?.network ?? gcp.networkName, ctx.store.runId),
    };
  };

  return {
    kind: "gcp-vm",
    sideBySide: false,
    async provision(ctx) {
      const firstStack = ctx.plan.arms[arms[0]!]!.stack;
      const token = await resolveHfToken(first, firstStack, deps.automation);
      if (token.token) hfToken = token.token;
      const report = deps.preflight(
        arms.map((a) => ({
          stack: ctx.plan.arms[a]!.stack,
          config: configs[a]!,
          plan: ctx.plan.arms[a]!,
        })),
        { hfToken: token.state },
      );
      for (const w of report.warnings) ctx.log.warn(`${w.message}${w.hint ? ` — ${w.hint}` : ""}`);
      for (const l of report.costLines) ctx.log.info(l);
      if (report.problems.length)
        throw new UserError(
          `preflight failed:\n${report.problems.map((p) => `  - ${p.message}${p.hint ? `\n    ${p.hint}` : ""}`).join("\n")}`,
        );
      const runId = ctx.store.runId;
      const workDir = join(ctx.store.dir, "pulumi");
      const project = report.project ?? gcp.project;
      ctx.saveInfra({
        state: "provisioning",
        pulumiStack: runId,
        workDir,
        network: gcp.networkName,
        ...(project ? { project } : {}),
        billing: {
          ...(ctx.plan.arms[arms[0]!]!.cost
            ? { hourlyUsd: ctx.plan.arms[arms[0]!]!.cost!.hourly }
            : {}),
        },
      });
      stack = await deps.automation.stack(workDir, runId);
      const deadline = runDeadline(
        (await stack.getConfig(RUN_KEYS.deadline))?.value,
        deps.now(),
        gcp.maxRunHours,
      );
      await stack.setConfig({
        ...configEntries(first, {
          ...(hfToken ? { hfToken } : {}),
          ...(project ? { project } : {}),
        }),
        [RUN_KEYS.runId]: { value: runId },
        [RUN_KEYS.deploy]: { value: "false" },
        [RUN_KEYS.deadline]: { value: deadline },
      });
      const keys = await ensureRunKeys(stack, runId);
      registerSecret(keys.sshPrivateKey);
      registerSecret(keys.hostPrivateKey);
      let outputs: Record<string, unknown> | undefined;
      let zone: string | undefined;
      for (const z of gcp.zones) {
        ctx.signal.throwIfAborted();
        await stack.setConfig({ [RUN_KEYS.zone]: { value: z } });
        ctx.log.info(
          `provisioning ${gcp.machineType} in ${z} (run ${runId}, deleted at ${deadline} at the latest)`,
        );
        try {
          upStarted = true;
          outputs = await stack.up({
            signal: ctx.signal,
            hardSignal: ctx.hardSignal,
            onOutput: (l) => ctx.log.debug(l.trimEnd()),
          });
          zone = z;
          break;
        } catch (err) {
          failed = true;
          ctx.signal.throwIfAborted();
          const c = classifyUpError(errorMessage(err), gcp.provisioningModel, gcp.machineType);
          if ((c.kind === "capacity" || c.kind === "unavailable") && z !== gcp.zones.at(-1)) {
            ctx.log.warn(`${z}: ${c.hint}; trying the next zone`);
            continue;
          }
          throw c.hint
            ? new UserError(`pulumi up failed in ${z}: ${errorMessage(err)}`, {
                exitCode: 1,
                hint: c.hint,
              })
            : err;
        }
      }
      if (!outputs) throw new Error("no zone could be provisioned");
      failed = false;
      const ip = String(outputs.externalIp ?? "");
      ctx.saveInfra({
        state: "up",
        ...(zone ? { zone } : {}),
        instance: String(outputs.instance ?? ""),
        host: ip,
        sshCommand: String(outputs.sshCommand ?? ""),
        billing: {
          ...ctx.store.readManifest().infra?.billing,
          start: billingStart(outputs, deps.now()),
        },
      });
      if (deps.sshFilesRoot) await writeLocalSshFiles(runId, keys, ip, deps.sshFilesRoot);
      ctx.log.info(
        `VM up: ${String(outputs.instance ?? "")} (${ip}); waiting for the startup script`,
      );
      const target: SshTarget = {
        host: ip,
        username: String(outputs.sshUser ?? gcp.sshUser),
        privateKey: keys.sshPrivateKey,
        hostPublicKey: keys.hostPublicKey,
      };
      host = await waitForHostReady(() => deps.connect(target), {
        timeoutMs: deps.readyTimeoutMs,
        signal: ctx.signal,
        sleep: deps.sleep,
        log: (m) => ctx.log.debug(m),
      });
    },
    deployArm: (arm, ctx) => guard(() => onHost.deployArm(arm, ctx)),
    runArm: (arm, steps, ctx) => guard(() => onHost.runArm(arm, steps, ctx)),
    collect: (arm, ctx) => onHost.collect(arm, ctx),
    undeployArm: (arm, ctx) => onHost.undeployArm(arm, ctx),
    async destroy(ctx) {
      host?.close();
      host = undefined;
      if (!stack) return true;
      if (!upStarted) {
        // Nothing was ever submitted to the cloud: drop the empty stack, no destroy needed.
        await stack.remove().catch((err) => ctx.log.debug(`stack rm: ${errorMessage(err)}`));
        ctx.saveInfra({ state: "destroyed" });
        return true;
      }
      ctx.saveInfra({ state: "destroying" });
      ctx.log.info(`destroying run ${ctx.store.runId}`);
      const ok = await destroyWithRetries(
        stack,
        { ...deps, log: ctx.log },
        { afterFailure: failed || ctx.signal.aborted },
      );
      let cleaned = false;
      if (!ok) {
        const c = await cleanupAfterFailedDestroy(
          ctx.store.runId,
          where(ctx),
          deps.auditor,
          ctx.log,
        ).catch((err) => {
          ctx.log.error(`cleanup after the failed destroy: ${errorMessage(err)}`);
          return undefined;
        });
        // Gone from the cloud, though Pulumi's state may still list it: `inferbench destroy`
        // (refresh, then destroy) clears that; the manifest keeps destroy-failed until then.
        cleaned = c !== undefined && c.results.length > 0 && c.left.length === 0;
      }
      ctx.saveInfra({
        state: ok ? "destroyed" : "destroy-failed",
        billing: { ...ctx.store.readManifest().infra?.billing, end: deps.now().toISOString() },
      });
      if (!ok)
        ctx.log.error(
          `pulumi destroy failed${cleaned ? "; gcloud deleted every resource labelled with the run" : ""}: run \`inferbench destroy --run ${ctx.store.runId}\` to clear the Pulumi state`,
        );
      return ok;
    },
    async audit(ctx): Promise<Leftover[]> {
      if (!upStarted) return [];
      const left = await deps.auditor.leftovers(ctx.store.runId, where(ctx));
      if (!left.length) ctx.log.info(`audit: nothing labelled ${ctx.store.runId} is left`);
      return left;
    },
    cleanupCommands: (left, ctx) => cleanupCommands(left as LeftoverResource[], where(ctx).project),
  };
}

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
import type { Leftover, Target, TargetContext } from "../types.ts";
import {
  type ArmInput,
  ensureRunKeys,
  type PreflightReport,
  runPreflight,
  writeLocalSshFiles,
} from "./preflight/index.ts";

export interface GcpVmDeps {
  automation: AutomationApi;
  auditor: ResourceAuditor;
  connect: (t: SshTarget) => Promise<RemoteHost>;
  preflight: (arms: ArmInput[]) => PreflightReport;
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
    preflight: (arms) => runPreflight(arms),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    sshFilesRoot: join(process.env.HOME ?? ".", ".inferbench"),
    readyTimeoutMs: 30 * 60_000,
    destroyAttempts: 3,
    destroyBackoffMs: 15_000,
  };
}

/** What a failed `up` means and what to do: capacity → next zone; quota → which quota to ask for. */
export function classifyUpError(
  message: string,
  model: StackConfig["gcp"]["provisioningModel"],
): { kind: "capacity" | "quota" | "other"; hint?: string } {
  const quota = model === "STANDARD" ? "NVIDIA_H100_GPUS" : "PREEMPTIBLE_NVIDIA_H100_GPUS";
  if (
    /ZONE_RESOURCE_POOL_EXHAUSTED|does not have enough resources available|STOCKOUT/i.test(message)
  ) {
    return {
      kind: "capacity",
      hint: `no capacity in this zone; if every zone fails, request ${quota} quota in more regions or try SPOT/FLEX_START`,
    };
  }
  if (/QUOTA_EXCEEDED|Quota '.*' exceeded|quota.*exceeded/i.test(message)) {
    return {
      kind: "quota",
      hint: `request quota in the console (IAM & Admin → Quotas): ${quota} in the region and GPUS_ALL_REGIONS ≥ 8`,
    };
  }
  return { kind: "other" };
}

/** The Pulumi config entries for one arm's StackConfig (objects as JSON, the HF token secret). */
export function configEntries(
  config: StackConfig,
): Record<string, { value: string; secret?: boolean }> {
  const out: Record<string, { value: string; secret?: boolean }> = {};
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined || k === "hfToken") continue;
    out[k] = { value: typeof v === "string" ? v : JSON.stringify(v) };
  }
  if (typeof config.hfToken === "string") out.hfToken = { value: config.hfToken, secret: true };
  if (config.gcp.project) out["gcp:project"] = { value: config.gcp.project };
  return out;
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
  const hfToken = typeof first.hfToken === "string" ? first.hfToken : undefined;
  if (hfToken) registerSecret(hfToken);
  const onHost = composeHost(
    () => {
      if (!host) throw new Error("the VM is not connected");
      return host;
    },
    {
      ...(hfToken ? { hfToken } : {}),
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

  return {
    kind: "gcp-vm",
    sideBySide: false,
    async provision(ctx) {
      const report = deps.preflight(
        arms.map((a) => ({
          stack: ctx.plan.arms[a]!.stack,
          config: configs[a]!,
          plan: ctx.plan.arms[a]!,
        })),
      );
      for (const w of report.warnings) ctx.log.warn(`${w.message}${w.hint ? ` — ${w.hint}` : ""}`);
      for (const l of report.costLines) ctx.log.info(l);
      if (report.problems.length)
        throw new UserError(
          `preflight failed:\n${report.problems.map((p) => `  - ${p.message}${p.hint ? `\n    ${p.hint}` : ""}`).join("\n")}`,
        );
      const runId = ctx.store.runId;
      const workDir = join(ctx.store.dir, "pulumi");
      ctx.saveInfra({
        state: "provisioning",
        pulumiStack: runId,
        workDir,
        network: gcp.networkName,
        ...(gcp.project ? { project: gcp.project } : {}),
        billing: {
          ...(ctx.plan.arms[arms[0]!]!.cost
            ? { hourlyUsd: ctx.plan.arms[arms[0]!]!.cost!.hourly }
            : {}),
        },
      });
      stack = await deps.automation.stack(workDir, runId);
      await stack.setConfig({
        ...configEntries(first),
        [RUN_KEYS.runId]: { value: runId },
        [RUN_KEYS.deploy]: { value: "false" },
      });
      const keys = await ensureRunKeys(stack, runId);
      registerSecret(keys.sshPrivateKey);
      registerSecret(keys.hostPrivateKey);
      let outputs: Record<string, unknown> | undefined;
      let zone: string | undefined;
      for (const z of gcp.zones) {
        ctx.signal.throwIfAborted();
        await stack.setConfig({ [RUN_KEYS.zone]: { value: z } });
        ctx.log.info(`provisioning ${gcp.machineType} in ${z} (run ${runId})`);
        try {
          upStarted = true;
          outputs = await stack.up({
            signal: ctx.signal,
            onOutput: (l) => ctx.log.debug(l.trimEnd()),
          });
          zone = z;
          break;
        } catch (err) {
          failed = true;
          ctx.signal.throwIfAborted();
          const c = classifyUpError(errorMessage(err), gcp.provisioningModel);
          if (c.kind === "capacity" && z !== gcp.zones.at(-1)) {
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
        billing: { ...ctx.store.readManifest().infra?.billing, start: new Date().toISOString() },
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
      ctx.saveInfra({
        state: ok ? "destroyed" : "destroy-failed",
        billing: { ...ctx.store.readManifest().infra?.billing, end: new Date().toISOString() },
      });
      if (!ok) ctx.log.error(`destroy failed: run \`inferbench destroy --run ${ctx.store.runId}\``);
      return ok;
    },
    async audit(ctx): Promise<Leftover[]> {
      if (!upStarted) return [];
      const left = await deps.auditor.leftovers(ctx.store.runId, {
        ...(gcp.project ? { project: gcp.project } : {}),
        namePrefix: namePrefix(gcp.networkName, ctx.store.runId),
      });
      if (!left.length) ctx.log.info(`audit: nothing labelled ${ctx.store.runId} is left`);
      return left;
    },
    cleanupCommands: (left) => cleanupCommands(left as LeftoverResource[], gcp.project),
  };
}

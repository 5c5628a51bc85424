/**
 * The cloud part of `inferbench run` (gcp-vm): preflight → up → wait → benchmark each arm on the
 * VM (swapping compose projects, one VM for both arms) → pull → destroy in `finally`, also on
 * Ctrl-C (abort → cancel → refresh → destroy with retries) → audit for leftovers labelled with
 * the run id. The lead's `run` command calls `runCloud` for non-local targets.
 *
 * Everything with side effects comes in through `RunCloudDeps`, so the orchestration — above all
 * "destroy always runs" — is tested with a fake Automation API and a loopback SSH server.
 */
import { existsSync, readdirSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readDatasetFiles } from "../../compose/datasets.ts";
import { deployBundle, runRemoteBenchmark, waitForHostReady } from "../../compose/remote.ts";
import { renderCompose } from "../../compose/render.ts";
import {
  cleanupCommands,
  gcloudAuditor,
  type LeftoverResource,
  type ResourceAuditor,
} from "../../infra/audit.ts";
import { type AutomationApi, localAutomation, type StackOps } from "../../infra/automation.ts";
import { namePrefix } from "../../infra/naming.ts";
import { RUN_KEYS } from "../../infra/program-keys.ts";
import { DEFAULT_REMOTE_ROOT } from "../../infra/startup-script.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { errorMessage, UserError } from "../../lib/errors.ts";
import { readJsonFile } from "../../lib/json-file.ts";
import { createLogger, type Logger } from "../../lib/logger.ts";
import { registerSecret } from "../../lib/redact.ts";
import { connectSsh, type RemoteHost, type SshTarget } from "../../lib/ssh/ssh.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import { planStack } from "../plan-stack.ts";
import {
  type ArmInput,
  ensureRunKeys,
  type PreflightReport,
  runPreflight,
  writeLocalSshFiles,
} from "../preflight/index.ts";

export const MANIFEST_FILE = "cloud-run.json";
export const DEFAULT_RESULTS_ROOT = fileURLToPath(new URL("../../results/runs/", import.meta.url));

export type CloudRunState =
  | "provisioning"
  | "up"
  | "destroying"
  | "destroyed"
  | "kept"
  | "destroy-failed";

export interface CloudRunManifest {
  runId: string;
  stacks: string[];
  pulumiStack: string;
  workDir: string;
  project?: string;
  zone?: string;
  instance?: string;
  externalIp?: string;
  sshCommand?: string;
  hourlyUsd?: number;
  createdAt: string;
  updatedAt: string;
  state: CloudRunState;
  leftovers?: LeftoverResource[];
  cleanup?: string[];
}

export interface RunCloudDeps {
  automation: AutomationApi;
  auditor: ResourceAuditor;
  connect: (t: SshTarget) => Promise<RemoteHost>;
  loadArm: (stack: string, overrides: string[]) => ArmInput;
  preflight: (arms: ArmInput[]) => PreflightReport;
  /** Registers a Ctrl-C handler; returns its removal. */
  onInterrupt: (handler: () => void) => () => void;
  sleep: (ms: number) => Promise<void>;
  now: () => Date;
  log: Logger;
  /** Where ~/.inferbench/<run-id>/ ssh files go; undefined skips writing them. */
  sshFilesRoot?: string;
  readyTimeoutMs: number;
  destroyAttempts: number;
  destroyBackoffMs: number;
}

export interface RunCloudOptions {
  /** One stack (one arm) or two (baseline + managed on one VM). */
  stacks: string[];
  overrides?: string[];
  /** Skip destroy and say how to destroy later. */
  keep?: boolean;
  /** Provision and deploy nothing; implies keep. */
  provisionOnly?: boolean;
  runId?: string;
  resultsRoot?: string;
  deps?: Partial<RunCloudDeps>;
}

export interface ArmResult {
  stack: string;
  mode: string;
  /** results/runs/<run-id>/<stack>[/repeat-N]: bundle/ (what was deployed) and artifacts/. */
  dir: string;
  /** GenAI-Perf artifact folders, one per load point (`concurrency8/`, `request_rate4/`). */
  artifactsDir: string;
  ok: boolean;
  error?: string;
}

export interface RunCloudResult {
  runId: string;
  resultsDir: string;
  arms: ArmResult[];
  destroyed: boolean;
  kept: boolean;
  leftovers: LeftoverResource[];
  cleanup: string[];
}

export function newRunId(now: Date, rand: () => number = Math.random): string {
  const iso = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15).toLowerCase();
  const suffix = Math.floor(rand() * 0xffff)
    .toString(16)
    .padStart(4, "0");
  return `ib-${iso}-${suffix}`;
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

/** Arm order per repeat: alternate when interleaving so neither arm always runs on a warm cache. */
export function armSchedule<T>(
  arms: T[],
  repeats: number,
  interleave: boolean,
): Array<{ arm: T; repeat: number }> {
  const out: Array<{ arm: T; repeat: number }> = [];
  for (let r = 0; r < repeats; r++) {
    const order = interleave && r % 2 === 1 ? [...arms].reverse() : arms;
    for (const arm of order) out.push({ arm, repeat: r });
  }
  return out;
}

function defaultDeps(): RunCloudDeps {
  const log = createLogger("cloud");
  return {
    automation: localAutomation(),
    auditor: gcloudAuditor(),
    connect: connectSsh,
    loadArm: (stack, overrides) => {
      const { loaded, plan } = planStack(stack, overrides);
      return { stack, config: loaded.config, plan };
    },
    preflight: (arms) => runPreflight(arms),
    onInterrupt: (h) => {
      process.on("SIGINT", h);
      process.on("SIGTERM", h);
      return () => {
        process.off("SIGINT", h);
        process.off("SIGTERM", h);
      };
    },
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => new Date(),
    log,
    sshFilesRoot: join(process.env.HOME ?? ".", ".inferbench"),
    readyTimeoutMs: 30 * 60_000,
    destroyAttempts: 3,
    destroyBackoffMs: 15_000,
  };
}

export function readManifest(dir: string): CloudRunManifest | undefined {
  const p = join(dir, MANIFEST_FILE);
  if (!existsSync(p)) return undefined;
  return readJsonFile<CloudRunManifest>(p, "cloud run manifest");
}

export function listManifests(resultsRoot = DEFAULT_RESULTS_ROOT): CloudRunManifest[] {
  if (!existsSync(resultsRoot)) return [];
  const out: CloudRunManifest[] = [];
  for (const d of readdirSync(resultsRoot).sort()) {
    try {
      const m = readManifest(join(resultsRoot, d));
      if (m) out.push(m);
    } catch {
      // unreadable manifest: not ours to judge here
    }
  }
  return out;
}

async function saveManifest(dir: string, m: CloudRunManifest, now: Date): Promise<void> {
  m.updatedAt = now.toISOString();
  await writeFileAtomic(join(dir, MANIFEST_FILE), `${JSON.stringify(m, null, 2)}\n`);
}

/**
 * Destroy with the recovery sequence for interrupted or failed updates:
 * cancel (frees the lock of an aborted update) → refresh (clearing pending creates) → destroy
 * (continue on error), retried with backoff. Returns whether a destroy succeeded.
 */
export async function destroyWithRetries(
  stack: StackOps,
  deps: Pick<RunCloudDeps, "log" | "sleep" | "destroyAttempts" | "destroyBackoffMs">,
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

export async function runCloud(opts: RunCloudOptions): Promise<RunCloudResult> {
  const deps: RunCloudDeps = { ...defaultDeps(), ...opts.deps };
  const { log } = deps;
  if (opts.stacks.length < 1 || opts.stacks.length > 2) {
    throw new UserError("give one stack, or two (a baseline and a managed arm) to share one VM");
  }
  const arms = opts.stacks.map((s) => deps.loadArm(s, opts.overrides ?? []));
  for (const a of arms) if (typeof a.config.hfToken === "string") registerSecret(a.config.hfToken);

  const report = deps.preflight(arms);
  for (const w of report.warnings) log.warn(`${w.message}${w.hint ? ` — ${w.hint}` : ""}`);
  for (const l of report.costLines) log.info(l);
  if (report.problems.length) {
    throw new UserError(
      `preflight failed:\n${report.problems.map((p) => `  - ${p.message}${p.hint ? `\n    ${p.hint}` : ""}`).join("\n")}`,
    );
  }

  // Dataset files travel in the bundle: read them now, so a bad path fails before any GPU is paid for.
  const datasets = new Map(arms.map((a) => [a, readDatasetFiles(a.plan)]));

  const first = arms[0]!;
  const gcp = first.config.gcp;
  const runId = opts.runId ?? newRunId(deps.now());
  const resultsDir = join(opts.resultsRoot ?? DEFAULT_RESULTS_ROOT, runId);
  const workDir = join(resultsDir, "pulumi");
  await mkdir(resultsDir, { recursive: true });
  const keep = Boolean(opts.keep || opts.provisionOnly);
  const manifest: CloudRunManifest = {
    runId,
    stacks: opts.stacks,
    pulumiStack: runId,
    workDir,
    ...(gcp.project ? { project: gcp.project } : {}),
    ...(first.plan.cost ? { hourlyUsd: first.plan.cost.hourly } : {}),
    createdAt: deps.now().toISOString(),
    updatedAt: deps.now().toISOString(),
    state: "provisioning",
  };
  await saveManifest(resultsDir, manifest, deps.now());
  const destroyHint = `inferbench destroy --run ${runId}`;

  const ac = new AbortController();
  let destroying = false;
  const removeInterrupt = deps.onInterrupt(() => {
    if (!ac.signal.aborted) {
      log.warn(
        "interrupted: stopping, then destroying everything of this run (Ctrl-C again does not skip it)",
      );
      ac.abort(new Error("interrupted"));
    } else if (destroying) {
      log.warn(
        `destroy in progress; if you stop now, run \`${destroyHint}\` later to avoid paying for an idle VM`,
      );
    }
  });

  const armResults: ArmResult[] = [];
  let failure: unknown;
  let stack: StackOps | undefined;
  let upStarted = false;
  let destroyed = false;
  let leftovers: LeftoverResource[] = [];
  let cleanup: string[] = [];
  try {
    stack = await deps.automation.stack(workDir, runId);
    await stack.setConfig({
      ...configEntries(first.config),
      [RUN_KEYS.runId]: { value: runId },
      [RUN_KEYS.deploy]: { value: "false" },
    });
    const keys = await ensureRunKeys(stack, runId);
    registerSecret(keys.sshPrivateKey);
    registerSecret(keys.hostPrivateKey);

    let outputs: Record<string, unknown> | undefined;
    for (const zone of gcp.zones) {
      if (ac.signal.aborted) throw ac.signal.reason;
      await stack.setConfig({ [RUN_KEYS.zone]: { value: zone } });
      log.info(`provisioning ${gcp.machineType} in ${zone} (run ${runId})`);
      try {
        upStarted = true;
        outputs = await stack.up({ signal: ac.signal, onOutput: (l) => log.debug(l.trimEnd()) });
        manifest.zone = zone;
        break;
      } catch (err) {
        if (ac.signal.aborted) throw ac.signal.reason;
        const c = classifyUpError(errorMessage(err), gcp.provisioningModel);
        if (c.kind === "capacity" && zone !== gcp.zones.at(-1)) {
          log.warn(`${zone}: ${c.hint}; trying the next zone`);
          continue;
        }
        throw c.hint
          ? new UserError(`pulumi up failed in ${zone}: ${errorMessage(err)}`, {
              exitCode: 1,
              hint: c.hint,
            })
          : err;
      }
    }
    if (!outputs) throw new Error("no zone could be provisioned");
    const ip = String(outputs.externalIp ?? "");
    const user = String(outputs.sshUser ?? gcp.sshUser);
    Object.assign(manifest, {
      state: "up" as const,
      instance: String(outputs.instance ?? ""),
      externalIp: ip,
      sshCommand: String(outputs.sshCommand ?? ""),
    });
    await saveManifest(resultsDir, manifest, deps.now());
    if (deps.sshFilesRoot) await writeLocalSshFiles(runId, keys, ip, deps.sshFilesRoot);
    log.info(`VM up: ${manifest.instance} (${ip}); waiting for the startup script`);

    const target: SshTarget = {
      host: ip,
      username: user,
      privateKey: keys.sshPrivateKey,
      hostPublicKey: keys.hostPublicKey,
    };
    const host = await waitForHostReady(() => deps.connect(target), {
      timeoutMs: deps.readyTimeoutMs,
      signal: ac.signal,
      sleep: deps.sleep,
      log: (m) => log.debug(m),
    });
    try {
      if (opts.provisionOnly) {
        log.info(`provisioned; ssh: ${manifest.sshCommand}`);
      } else {
        const schedule = armSchedule(
          arms,
          first.config.run.repeats,
          first.config.run.interleaveArms,
        );
        for (const { arm, repeat } of schedule) {
          if (ac.signal.aborted) throw ac.signal.reason;
          const dir = join(
            resultsDir,
            arm.stack,
            ...(first.config.run.repeats > 1 ? [`repeat-${repeat + 1}`] : []),
          );
          const res: ArmResult = {
            stack: arm.stack,
            mode: arm.config.mode,
            dir,
            artifactsDir: join(dir, "artifacts"),
            ok: false,
          };
          armResults.push(res);
          try {
            const rendered = renderCompose(arm.plan, {
              allowUnpinnedImages: arm.config.run.allowUnpinnedImages,
              datasets: datasets.get(arm)!,
            });
            await mkdir(dir, { recursive: true });
            for (const [f, c] of Object.entries(rendered.files))
              await writeFileAtomic(join(dir, "bundle", f), c);
            log.info(
              `${arm.stack}: deploying ${arm.plan.engines.length} engines + router (compose project ${rendered.projectName})`,
            );
            await deployBundle(host, {
              remoteRoot: DEFAULT_REMOTE_ROOT,
              projectName: rendered.projectName,
              files: rendered.files,
              ...(typeof arm.config.hfToken === "string" ? { hfToken: arm.config.hfToken } : {}),
              waitTimeoutSec: rendered.waitTimeoutSec,
              signal: ac.signal,
              onOutput: (s) => log.debug(s.trimEnd()),
            });
            log.info(`${arm.stack}: benchmarking on the VM`);
            const { files } = await runRemoteBenchmark(host, {
              remoteRoot: DEFAULT_REMOTE_ROOT,
              projectName: rendered.projectName,
              localDir: res.artifactsDir,
              signal: ac.signal,
              onOutput: (s) => log.info(s.trimEnd()),
            });
            res.ok = true;
            log.info(`${arm.stack}: ${files.length} files → ${dir}`);
          } catch (err) {
            res.error = errorMessage(err);
            if (ac.signal.aborted) throw err;
            log.error(`${arm.stack}: ${res.error}`);
          }
        }
      }
    } finally {
      host.close();
    }
  } catch (err) {
    failure = err;
  } finally {
    if (keep && !ac.signal.aborted && stack) {
      manifest.state = "kept";
      log.warn(
        `--keep: the VM keeps running and billing (~$${first.plan.cost?.hourly ?? "?"}/h) until \`${destroyHint}\` (or its ${gcp.maxRunHours} h dead-man switch)`,
      );
    } else if (stack && !upStarted) {
      // Nothing was ever submitted to the cloud: drop the empty stack, no destroy needed.
      await stack.remove().catch((err) => log.debug(`stack rm: ${errorMessage(err)}`));
      destroyed = true;
      manifest.state = "destroyed";
    } else if (stack) {
      destroying = true;
      manifest.state = "destroying";
      await saveManifest(resultsDir, manifest, deps.now());
      log.info(`destroying run ${runId}`);
      destroyed = await destroyWithRetries(stack, deps, { afterFailure: failure !== undefined });
      manifest.state = destroyed ? "destroyed" : "destroy-failed";
      try {
        leftovers = await deps.auditor.leftovers(runId, {
          ...(gcp.project ? { project: gcp.project } : {}),
          namePrefix: namePrefix(gcp.networkName, runId),
        });
        cleanup = cleanupCommands(leftovers, gcp.project);
        if (leftovers.length) {
          log.error(
            `resources of run ${runId} are still there:\n${cleanup.map((c) => `  ${c}`).join("\n")}`,
          );
        } else {
          log.info(`audit: nothing labelled ${runId} is left`);
        }
      } catch (err) {
        log.warn(
          `audit failed (${errorMessage(err)}); check by hand: gcloud compute instances list --filter=labels.inferbench-run=${runId}`,
        );
      }
      manifest.leftovers = leftovers;
      manifest.cleanup = cleanup;
      if (!destroyed) log.error(`destroy failed: run \`${destroyHint}\``);
    }
    await saveManifest(resultsDir, manifest, deps.now());
    removeInterrupt();
  }

  const result: RunCloudResult = {
    runId,
    resultsDir,
    arms: armResults,
    destroyed,
    kept: keep,
    leftovers,
    cleanup,
  };
  if (failure !== undefined) {
    if (ac.signal.aborted)
      throw new UserError(
        `run ${runId} interrupted; ${destroyed ? "destroyed" : `not destroyed: ${destroyHint}`}`,
        { exitCode: 130 },
      );
    throw failure;
  }
  const failed = armResults.filter((a) => !a.ok);
  if (failed.length) {
    throw new UserError(
      `benchmark failed for ${failed.map((a) => `${a.stack}: ${a.error}`).join("; ")}`,
      { exitCode: 1 },
    );
  }
  return result;
}

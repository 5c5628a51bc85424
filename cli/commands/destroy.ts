/**
 * `inferbench destroy`: tear down runs that are still up (kept with --keep, or whose destroy
 * failed), found through the `infra` facts of their run manifests (results/runs/<run-id>/manifest.json):
 * a cloud run through its Pulumi stack (then gcloud by label when Pulumi fails, then an audit), a
 * run kept on an ssh host by taking its compose projects down and releasing the host's lock.
 */

import type { Command } from "commander";
import { z } from "zod";
import { cleanupCommands, gcloudAuditor, type ResourceAuditor } from "../../infra/audit.ts";
import { type AutomationApi, localAutomation } from "../../infra/automation.ts";
import { namePrefix } from "../../infra/naming.ts";
import { UserError } from "../../lib/errors.ts";
import { createLogger, type Logger } from "../../lib/logger.ts";
import { DEFAULT_RUNS_DIR, RunStore } from "../../results/store.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import { cleanupAfterFailedDestroy, destroyWithRetries } from "../../targets/gcp-vm/index.ts";
import { type InfraRun, LIVE_STATES, listInfraRuns } from "../../targets/runs.ts";
import { teardownKeptSshRun } from "../../targets/ssh/index.ts";
import type { Leftover } from "../../targets/types.ts";
import { parseOptions } from "../options.ts";

const optionsSchema = z
  .object({
    stack: z.string().min(1).optional(),
    run: z.string().min(1).optional(),
    resultsDir: z.string().min(1).optional(),
  })
  .refine((o) => o.stack || o.run, {
    message: "give --stack <name> or --run <run-id>",
    path: ["stack"],
  });

/** Live runs matching a stack name or run id. */
export function selectRuns(all: InfraRun[], sel: { stack?: string; run?: string }): InfraRun[] {
  return all.filter(
    (m) =>
      LIVE_STATES.has(m.infra.state) &&
      (sel.run ? m.runId === sel.run : m.stacks.includes(sel.stack ?? "")),
  );
}

export interface DestroyDeps {
  automation: AutomationApi;
  auditor: ResourceAuditor;
  log: Logger;
  sleep: (ms: number) => Promise<void>;
  /** A run kept on an ssh host: its projects down, the lock released, the engine audited. */
  teardownSsh: (config: StackConfig, runId: string, arms: readonly string[]) => Promise<Leftover[]>;
}

/** A kept ssh run: nothing to destroy in a cloud; what the run deployed comes off the host. */
async function destroySshRun(run: InfraRun, deps: DestroyDeps): Promise<boolean> {
  const m = RunStore.atDir(run.dir).readManifest();
  const config = (m.config as Record<string, StackConfig> | undefined)?.[m.arms[0]!];
  if (!config?.ssh?.host) {
    deps.log.error(`run ${run.runId}: its manifest names no ssh host; nothing to tear down here`);
    return false;
  }
  const left = await deps.teardownSsh(config, run.runId, m.arms);
  RunStore.atDir(run.dir).updateInfra({
    state: left.length ? "destroy-failed" : "destroyed",
    leftovers: left,
    billing: { ...run.infra.billing, end: new Date().toISOString() },
  });
  if (left.length)
    deps.log.error(
      `still on ${config.ssh.host}: ${left.map((l) => `${l.kind} ${l.name}`).join(", ")}`,
    );
  return left.length === 0;
}

export async function destroyRuns(
  runs: InfraRun[],
  deps: DestroyDeps,
): Promise<{ destroyed: string[]; failed: string[]; cleanup: string[] }> {
  const destroyed: string[] = [];
  const failed: string[] = [];
  const cleanup: string[] = [];
  for (const run of runs) {
    const m = run.infra;
    deps.log.info(`destroying run ${run.runId} (${run.stacks.join(", ")})`);
    if (run.target === "ssh") {
      const ok = await destroySshRun(run, deps).catch((err) => {
        deps.log.error(`run ${run.runId}: ${(err as Error).message}`);
        return false;
      });
      (ok ? destroyed : failed).push(run.runId);
      continue;
    }
    if (!m.workDir || !m.pulumiStack) {
      deps.log.error(
        `run ${run.runId}: its manifest names no Pulumi stack; nothing to destroy here`,
      );
      failed.push(run.runId);
      continue;
    }
    const stack = await deps.automation.stack(m.workDir, m.pulumiStack);
    const ok = await destroyWithRetries(
      stack,
      { log: deps.log, sleep: deps.sleep, destroyAttempts: 3, destroyBackoffMs: 15_000 },
      { afterFailure: m.state !== "kept" },
    );
    // The project and network the run resolved and stored, not today's defaults.
    const where = {
      ...(m.project ? { project: m.project } : {}),
      namePrefix: namePrefix(m.network ?? "inferbench", run.runId),
    };
    // Pulumi could not destroy: delete what is labelled with the run with gcloud, then audit.
    if (!ok)
      await cleanupAfterFailedDestroy(run.runId, where, deps.auditor, deps.log).catch((err) =>
        deps.log.error(`cleanup after the failed destroy: ${(err as Error).message}`),
      );
    const left = await deps.auditor.leftovers(run.runId, where).catch((err) => {
      deps.log.warn(`audit failed: ${(err as Error).message}`);
      return [];
    });
    const cmds = cleanupCommands(left, m.project);
    cleanup.push(...cmds);
    RunStore.atDir(run.dir).updateInfra({
      state: ok ? "destroyed" : "destroy-failed",
      leftovers: left,
      cleanup: cmds,
      billing: { ...m.billing, end: new Date().toISOString() },
    });
    (ok ? destroyed : failed).push(run.runId);
    if (cmds.length) deps.log.error(`still there:\n${cmds.map((c) => `  ${c}`).join("\n")}`);
  }
  return { destroyed, failed, cleanup };
}

export function registerDestroy(program: Command): void {
  program
    .command("destroy")
    .description(
      "Destroy cloud runs that are still up: kept with `run --keep`, or whose automatic destroy " +
        "failed. Runs are found through results/runs/<run-id>/manifest.json. After destroying, checks " +
        "GCP for anything still labelled with the run id and prints the exact cleanup commands.",
    )
    .option("-s, --stack <name>", "destroy every live run of this stack")
    .option("--run <run-id>", "destroy this run")
    .option("--results-dir <dir>", "where run folders live", DEFAULT_RUNS_DIR)
    .addHelpText(
      "after",
      "\nExamples:\n  inferbench destroy --stack gcp-managed\n  inferbench destroy --run 20261124-134500-7fff\n",
    )
    .action(async (raw: unknown) => {
      const opts = parseOptions(optionsSchema, raw);
      const root = opts.resultsDir ?? DEFAULT_RUNS_DIR;
      const runs = selectRuns(listInfraRuns(root), opts);
      const log = createLogger("destroy");
      if (runs.length === 0) {
        log.info(
          `no live run ${opts.run ? `with id ${opts.run}` : `of stack ${opts.stack}`} in ${root}`,
        );
        return;
      }
      const r = await destroyRuns(runs, {
        automation: localAutomation(),
        auditor: gcloudAuditor(),
        log,
        sleep: (ms) => new Promise((res) => setTimeout(res, ms)),
        teardownSsh: (config, runId, arms) => teardownKeptSshRun(config, runId, arms),
      });
      if (r.failed.length || r.cleanup.length) {
        throw new UserError(
          `not everything was destroyed (${[...r.failed].join(", ") || "leftovers"})`,
          {
            exitCode: 1,
            hint: r.cleanup.join("\n") || undefined,
          },
        );
      }
    });
}

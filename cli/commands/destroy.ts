/**
 * `inferbench destroy`: tear down cloud runs that are still up (kept with --keep, or whose destroy
 * failed), found through their run manifests in results/runs/<run-id>/cloud-run.json.
 */

import { join } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { cleanupCommands, gcloudAuditor, type ResourceAuditor } from "../../infra/audit.ts";
import { type AutomationApi, localAutomation } from "../../infra/automation.ts";
import { namePrefix } from "../../infra/naming.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { UserError } from "../../lib/errors.ts";
import { createLogger, type Logger } from "../../lib/logger.ts";
import { parseOptions } from "../options.ts";
import {
  type CloudRunManifest,
  DEFAULT_RESULTS_ROOT,
  destroyWithRetries,
  listManifests,
  MANIFEST_FILE,
} from "./run-cloud.ts";

const LIVE: CloudRunManifest["state"][] = [
  "provisioning",
  "up",
  "destroying",
  "kept",
  "destroy-failed",
];

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
export function selectRuns(
  all: CloudRunManifest[],
  sel: { stack?: string; run?: string },
): CloudRunManifest[] {
  return all.filter(
    (m) =>
      LIVE.includes(m.state) &&
      (sel.run ? m.runId === sel.run : m.stacks.includes(sel.stack ?? "")),
  );
}

export interface DestroyDeps {
  automation: AutomationApi;
  auditor: ResourceAuditor;
  log: Logger;
  sleep: (ms: number) => Promise<void>;
  networkName?: string;
}

export async function destroyRuns(
  runs: CloudRunManifest[],
  resultsRoot: string,
  deps: DestroyDeps,
): Promise<{ destroyed: string[]; failed: string[]; cleanup: string[] }> {
  const destroyed: string[] = [];
  const failed: string[] = [];
  const cleanup: string[] = [];
  for (const m of runs) {
    deps.log.info(`destroying run ${m.runId} (${m.stacks.join(", ")})`);
    const stack = await deps.automation.stack(m.workDir, m.pulumiStack);
    const ok = await destroyWithRetries(
      stack,
      { log: deps.log, sleep: deps.sleep, destroyAttempts: 3, destroyBackoffMs: 15_000 },
      { afterFailure: m.state !== "kept" },
    );
    const left = await deps.auditor
      .leftovers(m.runId, {
        ...(m.project ? { project: m.project } : {}),
        namePrefix: namePrefix(deps.networkName ?? "inferbench", m.runId),
      })
      .catch((err) => {
        deps.log.warn(`audit failed: ${(err as Error).message}`);
        return [];
      });
    const cmds = cleanupCommands(left, m.project);
    cleanup.push(...cmds);
    m.state = ok ? "destroyed" : "destroy-failed";
    m.leftovers = left;
    m.cleanup = cmds;
    m.updatedAt = new Date().toISOString();
    await writeFileAtomic(
      join(resultsRoot, m.runId, MANIFEST_FILE),
      `${JSON.stringify(m, null, 2)}\n`,
    );
    (ok ? destroyed : failed).push(m.runId);
    if (cmds.length) deps.log.error(`still there:\n${cmds.map((c) => `  ${c}`).join("\n")}`);
  }
  return { destroyed, failed, cleanup };
}

export function registerDestroy(program: Command): void {
  program
    .command("destroy")
    .description(
      "Destroy cloud runs that are still up: kept with `run --keep`, or whose automatic destroy " +
        "failed. Runs are found in results/runs/<run-id>/cloud-run.json. After destroying, checks " +
        "GCP for anything still labelled with the run id and prints the exact cleanup commands.",
    )
    .option("-s, --stack <name>", "destroy every live run of this stack")
    .option("--run <run-id>", "destroy this run")
    .option("--results-dir <dir>", "where run folders live", DEFAULT_RESULTS_ROOT)
    .addHelpText(
      "after",
      "\nExamples:\n  inferbench destroy --stack gcp-managed\n  inferbench destroy --run ib-20261124-134500-7fff\n",
    )
    .action(async (raw: unknown) => {
      const opts = parseOptions(optionsSchema, raw);
      const root = opts.resultsDir ?? DEFAULT_RESULTS_ROOT;
      const runs = selectRuns(listManifests(root), opts);
      const log = createLogger("destroy");
      if (runs.length === 0) {
        log.info(
          `no live run ${opts.run ? `with id ${opts.run}` : `of stack ${opts.stack}`} in ${root}`,
        );
        return;
      }
      const r = await destroyRuns(runs, root, {
        automation: localAutomation(),
        auditor: gcloudAuditor(),
        log,
        sleep: (ms) => new Promise((res) => setTimeout(res, ms)),
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

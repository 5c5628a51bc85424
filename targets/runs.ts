/** Runs that used a remote host, as `status` and `destroy` see them: from each run's manifest `infra`. */
import { existsSync, readdirSync } from "node:fs";
import { DEFAULT_RUNS_DIR, type InfraFacts, RunStore } from "../results/store.ts";

export interface InfraRun {
  runId: string;
  dir: string;
  stacks: string[];
  target: string;
  createdAt: string;
  updatedAt: string;
  infra: InfraFacts;
}

export const LIVE_STATES: ReadonlySet<InfraFacts["state"]> = new Set([
  "provisioning",
  "up",
  "destroying",
  "kept",
  "destroy-failed",
]);

export function listInfraRuns(runsDir = DEFAULT_RUNS_DIR): InfraRun[] {
  if (!existsSync(runsDir)) return [];
  const out: InfraRun[] = [];
  for (const d of readdirSync(runsDir).sort()) {
    try {
      const store = new RunStore(d, runsDir);
      if (!existsSync(store.manifestPath())) continue;
      const m = store.readManifest();
      if (!m.infra || m.infra.state === "none") continue;
      out.push({
        runId: m.runId,
        dir: store.dir,
        stacks: m.command.stacks ?? [m.command.stack],
        target: m.target,
        createdAt: m.createdAt,
        updatedAt: m.updatedAt,
        infra: m.infra,
      });
    } catch {
      // an unreadable manifest is not ours to judge here
    }
  }
  return out;
}

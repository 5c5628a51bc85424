/** `inferbench status`: live cloud runs with their age and estimated accrued cost. */
import type { Command } from "commander";
import { z } from "zod";
import { renderTable } from "../../lib/table.ts";
import { DEFAULT_RUNS_DIR } from "../../results/store.ts";
import { type InfraRun, LIVE_STATES, listInfraRuns } from "../../targets/runs.ts";
import { parseOptions } from "../options.ts";

export interface StatusRow {
  runId: string;
  stacks: string;
  state: string;
  age: string;
  accruedUsd: string;
  where: string;
}

export function formatAge(ms: number): string {
  const m = Math.max(0, Math.floor(ms / 60_000));
  return m < 60 ? `${m}m` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** Accrued cost = hourly estimate × hours since creation (an estimate; billing is per second). */
export function statusRows(all: InfraRun[], now: Date, includeDone = false): StatusRow[] {
  return all
    .filter((r) => includeDone || LIVE_STATES.has(r.infra.state))
    .map((r) => {
      const m = r.infra;
      // The billing window when the run recorded one; else the manifest's own times.
      const start = Date.parse(m.billing?.start ?? r.createdAt);
      const end = LIVE_STATES.has(m.state)
        ? now.getTime()
        : Date.parse(m.billing?.end ?? r.updatedAt);
      const ms = end - start;
      const hourly = m.billing?.hourlyUsd;
      return {
        runId: r.runId,
        stacks: r.stacks.join("+"),
        state: m.state,
        age: formatAge(ms),
        accruedUsd: hourly === undefined ? "?" : `~$${((hourly * ms) / 3_600_000).toFixed(2)}`,
        where: [m.instance, m.zone].filter(Boolean).join(" @ ") || "-",
      };
    });
}

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description(
      "List cloud runs that are still live (provisioning, up, kept, or whose destroy failed) with " +
        "their age and estimated accrued cost (hourly estimate × age; an estimate, not a bill).",
    )
    .option("--all", "include destroyed runs")
    .option("--json", "print JSON")
    .option("--results-dir <dir>", "where run folders live", DEFAULT_RUNS_DIR)
    .action((raw: unknown) => {
      const opts = parseOptions(
        z.object({
          all: z.boolean().default(false),
          json: z.boolean().default(false),
          resultsDir: z.string().min(1),
        }),
        raw,
      );
      const rows = statusRows(listInfraRuns(opts.resultsDir), new Date(), opts.all);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      if (rows.length === 0) {
        process.stdout.write("no live cloud runs\n");
        return;
      }
      process.stdout.write(
        `${renderTable(
          ["run", "stacks", "state", "age", "accrued (est.)", "instance"],
          rows.map((r) => [r.runId, r.stacks, r.state, r.age, r.accruedUsd, r.where]),
        )}\n`,
      );
    });
}

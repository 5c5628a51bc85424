/** `inferbench status`: live cloud runs with their age and estimated accrued cost. */
import type { Command } from "commander";
import { z } from "zod";
import { renderTable } from "../../lib/table.ts";
import { parseOptions } from "../options.ts";
import { type CloudRunManifest, DEFAULT_RESULTS_ROOT, listManifests } from "./run-cloud.ts";

const LIVE = new Set<CloudRunManifest["state"]>([
  "provisioning",
  "up",
  "destroying",
  "kept",
  "destroy-failed",
]);

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
export function statusRows(all: CloudRunManifest[], now: Date, includeDone = false): StatusRow[] {
  return all
    .filter((m) => includeDone || LIVE.has(m.state))
    .map((m) => {
      const end = LIVE.has(m.state) ? now.getTime() : Date.parse(m.updatedAt);
      const ms = end - Date.parse(m.createdAt);
      return {
        runId: m.runId,
        stacks: m.stacks.join("+"),
        state: m.state,
        age: formatAge(ms),
        accruedUsd:
          m.hourlyUsd === undefined ? "?" : `~$${((m.hourlyUsd * ms) / 3_600_000).toFixed(2)}`,
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
    .option("--results-dir <dir>", "where run folders live", DEFAULT_RESULTS_ROOT)
    .action((raw: unknown) => {
      const opts = parseOptions(
        z.object({
          all: z.boolean().default(false),
          json: z.boolean().default(false),
          resultsDir: z.string().min(1),
        }),
        raw,
      );
      const rows = statusRows(listManifests(opts.resultsDir), new Date(), opts.all);
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

/** `inferbench report <run-id>`: regenerate a run's comparison and report files. */
import type { Command } from "commander";
import { z } from "zod";
import { compareRun } from "../../results/run-sides.ts";
import { DEFAULT_RUNS_DIR, RunStore } from "../../results/store.ts";
import { parseOptions } from "../options.ts";

const optionsSchema = z.object({ runsDir: z.string().min(1).default(DEFAULT_RUNS_DIR) });

export function registerReport(program: Command): void {
  program
    .command("report")
    .description(
      "Regenerate report.md, report.html and the PNG charts of a run (and its comparison.json/.csv)\n" +
        "from the stored measurements. Measurements are never changed.",
    )
    .argument("<run-id>", "run to report")
    .option("--runs-dir <dir>", "where runs are stored", DEFAULT_RUNS_DIR)
    .action(async (runId: string, raw: unknown) => {
      const opts = parseOptions(optionsSchema, raw);
      const { reportHtml } = await compareRun(RunStore.open(runId, opts.runsDir));
      process.stdout.write(`report: ${reportHtml}\n`);
    });
}

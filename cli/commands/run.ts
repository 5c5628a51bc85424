/**
 * `inferbench run`: the whole pipeline. Local stacks run the embedded default (both arms on
 * emulated engines); cloud stacks provision, benchmark, pull results and destroy.
 */
import type { Command } from "commander";
import { z } from "zod";
import { UserError } from "../../lib/errors.ts";
import { logger } from "../../lib/logger.ts";
import { redactObject } from "../../lib/redact.ts";
import { collect, parseOptions } from "../options.ts";
import { planStack } from "../plan-stack.ts";
import { formatRunSummary } from "../run-summary.ts";

const optionsSchema = z
  .object({
    stack: z.string().min(1).optional(),
    set: z.array(z.string()).default([]),
    quick: z.boolean().default(false),
    interleave: z.boolean().default(true),
    resume: z.string().min(1).optional(),
    runsDir: z.string().min(1).optional(),
  })
  .refine((o) => o.stack !== undefined || o.resume !== undefined, { message: "give --stack <name> or --resume <run-id>", path: ["stack"] });

export function registerRun(program: Command): void {
  program
    .command("run")
    .description(
      "Run the benchmark end to end. For a local stack (the embedded default): start both arms on\n" +
        "emulated engines, drive every load point (arms interleaved), compare, and write a report.\n" +
        "Completed load points are kept; an interrupted run continues with --resume <run-id>.",
    )
    .option("-s, --stack <name>", "stack to run: stacks/Pulumi.<name>.yaml (default for npm start: local)")
    .option("--set <path=value>", "override a config value (repeatable), as for `inferbench plan`", collect, [])
    .option("--quick", "the same pipeline on a reduced load (two load points, fewer requests)")
    .option("--no-interleave", "run all of one arm's load points, then the other's (default: interleave per point)")
    .option("--resume <run-id>", "continue an interrupted run: load points with complete artifacts are skipped")
    .option("--runs-dir <dir>", "where runs are stored (default results/runs)")
    .addHelpText("after", "\nExamples:\n  inferbench run --stack local\n  inferbench run --stack local --quick\n  inferbench run --resume 20261124-134512-ab12\n")
    .action(async (raw: unknown) => {
      const opts = parseOptions(optionsSchema, raw);
      // Loaded on use: `serve` children start faster without the run pipeline's modules.
      const { runEmbedded } = await import("../../runners/embedded.ts");
      const { writeReportFiles } = await import("../write-report.ts");
      const controller = new AbortController();
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        signals++;
        if (signals === 1) {
          logger.warn(`${sig}: stopping after cleanup (children are ended, completed points kept)…`);
          controller.abort(new Error(sig));
        }
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      try {
        const result = await runEmbedded({
          stack: opts.stack ?? "local",
          overrides: opts.set,
          quick: opts.quick,
          interleave: opts.interleave,
          ...(opts.resume ? { resume: opts.resume } : {}),
          ...(opts.runsDir ? { runsDir: opts.runsDir } : {}),
          log: logger,
          signal: controller.signal,
          planArm: (stack, overrides) => {
            const { plan, loaded } = planStack(stack, overrides);
            return { plan, config: redactObject(loaded.config) };
          },
          onProgress: (line) => logger.info(line),
          writeReport: writeReportFiles,
        });
        process.stdout.write(`${formatRunSummary(result.comparison)}\n`);
        process.stdout.write(`\nrun ${result.runId}: ${result.dir}\n`);
        if (result.reportHtml) process.stdout.write(`report: ${result.reportHtml}\n`);
        if (!result.allValid) {
          throw new UserError("some load points are INVALID (the load generator fell behind); see the report", { exitCode: 3 });
        }
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}

/**
 * `inferbench run`: the whole pipeline. Local stacks run the embedded default (both arms on
 * emulated engines); cloud stacks provision, benchmark, pull results and destroy.
 */
import type { Command } from "commander";
import { z } from "zod";
import { UserError } from "../../lib/errors.ts";
import { logger } from "../../lib/logger.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import { planStack } from "../../targets/plan-stack.ts";
import { collect, parseOptions } from "../options.ts";
import { formatRunSummary } from "../run-summary.ts";

const optionsSchema = z
  .object({
    stack: z.string().min(1).optional(),
    stacks: z
      .string()
      .min(1)
      .transform((v) => v.split(",").map((x) => x.trim()))
      .optional(),
    keep: z.boolean().default(false),
    set: z.array(z.string()).default([]),
    quick: z.boolean().default(false),
    interleave: z.boolean().default(true),
    resume: z.string().min(1).optional(),
    runsDir: z.string().min(1).optional(),
  })
  .refine((o) => o.stack !== undefined || o.stacks !== undefined || o.resume !== undefined, {
    message: "give --stack <name>, --stacks <a,b> or --resume <run-id>",
    path: ["stack"],
  })
  .refine((o) => o.stack === undefined || o.stacks === undefined, {
    message: "give --stack (both arms from one stack) or --stacks (one stack per arm), not both",
    path: ["stack"],
  });

export function registerRun(program: Command): void {
  program
    .command("run")
    .description(
      "Run the benchmark end to end. For a local stack (the embedded default): start both arms on\n" +
        "emulated engines, drive every load point (arms interleaved), compare, and write a report.\n" +
        "Completed load points are kept; an interrupted run continues with --resume <run-id>.",
    )
    .option(
      "-s, --stack <name>",
      "stack to run: stacks/Pulumi.<name>.yaml (default for npm start: local)",
    )
    .option(
      "--stacks <a,b>",
      "cloud: two stacks (baseline and managed arms) benchmarked on one VM, then compared",
    )
    .option("--keep", "cloud: keep the stack after the run (prints how to destroy it later)")
    .option(
      "--set <path=value>",
      "override a config value (repeatable), as for `inferbench plan`",
      collect,
      [],
    )
    .option("--quick", "the same pipeline on a reduced load (two load points, fewer requests)")
    .option(
      "--no-interleave",
      "run all of one arm's load points, then the other's (default: interleave per point)",
    )
    .option(
      "--resume <run-id>",
      "continue an interrupted run: load points with complete artifacts are skipped",
    )
    .option("--runs-dir <dir>", "where runs are stored (default results/runs)")
    .addHelpText(
      "after",
      "\nExamples:\n  inferbench run --stack local\n  inferbench run --stack local --quick\n  inferbench run --resume 20261124-134512-ab12\n",
    )
    .action(async (raw: unknown) => {
      const opts = parseOptions(optionsSchema, raw);
      const stacks = opts.stacks ?? (opts.stack ? [opts.stack] : []);
      if (stacks.length > 2)
        throw new UserError("give one stack (both arms from it) or two (one per arm)");
      // Loaded on use: `serve` children start faster without the run pipeline's modules.
      const { runExperiment } = await import("../../experiments/execute.ts");
      const { targetFor } = await import("../../targets/index.ts");
      const soft = new AbortController();
      const hard = new AbortController();
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        signals++;
        if (signals === 1) {
          logger.warn(
            `${sig}: stopping the current point; completed points are collected, then everything is torn down (${sig} again: tear down at once)`,
          );
          soft.abort(new Error(sig));
        } else if (signals === 2) {
          logger.warn(`${sig} again: skipping collection, tearing down now`);
          hard.abort(new Error(sig));
        }
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      try {
        const result = await runExperiment({
          stacks: stacks.length ? stacks : ["local"],
          overrides: opts.set,
          quick: opts.quick,
          interleave: opts.interleave,
          ...(opts.resume ? { resume: opts.resume } : {}),
          ...(opts.runsDir ? { runsDir: opts.runsDir } : {}),
          keep: opts.keep,
          log: logger,
          signal: soft.signal,
          hardSignal: hard.signal,
          // Configs stay unredacted for the target (secrets); the run store redacts what it writes.
          planArm: (stack, overrides) => {
            const { plan, loaded } = planStack(stack, overrides);
            return { plan, config: loaded.config };
          },
          target: (plan, configs) =>
            targetFor(plan, { log: logger, configs: configs as Record<string, StackConfig> }),
          onProgress: (line) => logger.info(line),
        });
        if (result.comparison) process.stdout.write(`${formatRunSummary(result.comparison)}\n`);
        process.stdout.write(`\nrun ${result.runId}: ${result.dir}\n`);
        if (result.reportHtml) process.stdout.write(`report: ${result.reportHtml}\n`);
        if (result.leftovers.length)
          throw new UserError(`the run left resources behind; see above`, { exitCode: 1 });
        if (!result.allValid) {
          throw new UserError(
            "some load points are INVALID (the load generator fell behind, or a model had no successful request); see the report",
            { exitCode: 3 },
          );
        }
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}

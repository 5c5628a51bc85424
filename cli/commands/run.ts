/**
 * `inferbench run`: the whole pipeline. Local stacks run the embedded default (both arms on
 * emulated engines); cloud stacks provision, benchmark, pull results and destroy.
 */
import type { Command } from "commander";
import { z } from "zod";
import { autoRates, parseFractions } from "../../experiments/auto-rates.ts";
import { UserError } from "../../lib/errors.ts";
import { executeRun } from "../execute-run.ts";
import { collect, parseOptions } from "../options.ts";
import { withUpload } from "../upload.ts";

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
    autoRates: z.union([z.literal(true), z.string().min(1)]).optional(),
    probeConcurrency: z.coerce.number().int().positive().optional(),
    probeRequests: z.coerce.number().int().positive().optional(),
    rateDistribution: z.enum(["poisson", "constant"]).optional(),
    upload: z.string().min(1).optional(),
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
    .option(
      "--auto-rates [fractions]",
      "probe the saturation (closed loop, both arms: a run of its own), then sweep open-loop rates at these fractions of it (default 0.1,0.2,…,1; `50%` works too) in a second run, whose load points these rates replace and whose manifest records the probe",
    )
    .option("--probe-concurrency <n>", "--auto-rates: requests in flight during the probe (64)")
    .option("--probe-requests <n>", "--auto-rates: requests the probe measures per arm (256)")
    .option("--rate-distribution <d>", "--auto-rates: arrivals of the sweep, poisson | constant")
    .option(
      "--upload <gs://bucket/prefix>",
      "upload the run folder when the run ends (also after a failure or Ctrl-C); the bucket is checked with a marker object before anything runs",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  inferbench run --stack local\n  inferbench run --stack local --quick\n  inferbench run --stack local --auto-rates 0.25,0.5,0.75,1\n  inferbench run --resume 20261124-134512-ab12\n",
    )
    .action(async (raw: unknown) => {
      const opts = parseOptions(optionsSchema, raw);
      const stacks = opts.stacks ?? (opts.stack ? [opts.stack] : []);
      if (stacks.length > 2)
        throw new UserError("give one stack (both arms from it) or two (one per arm)");
      const auto =
        opts.autoRates === undefined
          ? undefined
          : autoRates({
              ...(opts.autoRates === true ? {} : { fractions: parseFractions(opts.autoRates) }),
              ...(opts.probeConcurrency ? { probeConcurrency: opts.probeConcurrency } : {}),
              ...(opts.probeRequests ? { probeRequests: opts.probeRequests } : {}),
              ...(opts.rateDistribution ? { distribution: opts.rateDistribution } : {}),
            });
      if (!auto && (opts.probeConcurrency || opts.probeRequests || opts.rateDistribution))
        throw new UserError(
          "--probe-concurrency, --probe-requests and --rate-distribution go with --auto-rates",
        );
      await withUpload(opts.upload, (onStart) =>
        executeRun({
          onStart,
          ...(auto ? { autoRates: auto } : {}),
          stacks,
          overrides: opts.set,
          quick: opts.quick,
          interleave: opts.interleave,
          ...(opts.resume ? { resume: opts.resume } : {}),
          ...(opts.runsDir ? { runsDir: opts.runsDir } : {}),
          keep: opts.keep,
        }),
      );
    });
}

/**
 * `inferbench runner`: measure one arm of an experiment plan on the host this runs on (the
 * compose runner container, a Kubernetes Job, or by hand next to a deployment). It reads plan.json
 * — nothing is re-encoded as flags — and writes the run layout into --out.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import type { Command } from "commander";
import { z } from "zod";
import { UserError } from "../../lib/errors.ts";
import { logger } from "../../lib/logger.ts";
import { RunStore } from "../../results/store.ts";
import { parseExperimentPlan } from "../../runner/plan-file.ts";
import { RUNNER_SOME_INVALID, runArm } from "../../runner/run-arm.ts";
import { DEFAULT_SHARD_PORT, parseShard } from "../../runner/shards.ts";
import type { Arm } from "../../stacks/plan-types.ts";
import { parseOptions } from "../options.ts";

const optionsSchema = z.object({
  plan: z.string().min(1),
  arm: z.string().min(1),
  out: z.string().min(1),
  resume: z.boolean().default(false),
  steps: z
    .string()
    .regex(/^\d+(,\d+)*$/, "a comma-separated list of step indices, e.g. 0,2,4")
    .transform((v) => v.split(",").map(Number))
    .optional(),
  readyTimeout: z.coerce.number().positive().default(600),
  shard: z.string().optional(),
  coordinator: z.string().url("a URL such as http://runner-0.runner:9400").optional(),
});

export function registerRunner(program: Command): void {
  program
    .command("runner")
    .description(
      "Measure one arm of an experiment plan next to its servers: wait for every engine's and the\n" +
        "router's /health, then per step warm up, scrape /metrics before and after (sampling gauges\n" +
        "during the point), run the load point, judge its validity and write point.json last.",
    )
    .requiredOption(
      "--plan <file>",
      "the experiment plan (plan.json), bound to this host's addresses",
    )
    .requiredOption("--arm <name>", "the arm to measure (baseline or managed)")
    .requiredOption("--out <dir>", "the run folder to write into (<arm>/points/<label>/…)")
    .option("--resume", "skip steps whose point.json exists (otherwise such a step is refused)")
    .option(
      "--steps <list>",
      "only these step indices of the plan (default: every step of the arm)",
    )
    .option("--ready-timeout <s>", "seconds to wait for /health (default 600)")
    .option(
      "--shard <K/N>",
      "one of N load generators (distributed load): shard 0 measures, merges and writes; the\n" +
        "others send their share of each point to it",
    )
    .option(
      "--coordinator <url>",
      `where shard 0 listens (it binds that port; default port ${DEFAULT_SHARD_PORT})`,
    )
    .action(async (raw: unknown) => {
      const opts = parseOptions(optionsSchema, raw);
      if (!existsSync(opts.plan) || !statSync(opts.plan).isFile())
        throw new UserError(`--plan: ${opts.plan} does not exist or is not a file`, {
          hint: "pass the plan.json a target rendered for this host",
        });
      const planText = readFileSync(opts.plan, "utf8");
      const plan = parseExperimentPlan(planText, opts.plan);
      const planDigest = createHash("sha256").update(planText).digest("hex");
      const endpoints = plan.endpoints?.[opts.arm];
      if (!endpoints)
        throw new UserError(
          `${opts.plan}: no endpoints for arm "${opts.arm}" (the plan is not bound to a host)`,
          {
            hint: "targets bind the plan when they deploy; a hand-made plan needs endpoints.<arm>",
          },
        );
      const shard = opts.shard ? parseShard(opts.shard) : undefined;
      if (shard && shard.count > 1 && !opts.coordinator)
        throw new UserError("--shard K/N with N > 1 needs --coordinator URL (shard 0's address)", {
          hint: `every shard gets the same URL, e.g. --coordinator http://127.0.0.1:${DEFAULT_SHARD_PORT}`,
        });
      const controller = new AbortController();
      const stop = (sig: NodeJS.Signals) => controller.abort(new Error(sig));
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      // No run-folder lock here: in a container the pid and host name are new each time, so a
      // lock left by an interrupted runner could never be told stale. The executor holds the run's
      // lock, and the ssh target the host's.
      const store = RunStore.atDir(opts.out);
      try {
        const r = await runArm({
          plan,
          arm: opts.arm as Arm,
          endpoints,
          store,
          ...(opts.steps ? { steps: opts.steps } : {}),
          resume: opts.resume,
          signal: controller.signal,
          log: logger,
          readyTimeoutMs: opts.readyTimeout * 1000,
          ...(shard && shard.count > 1
            ? { shard: { ...shard, coordinator: opts.coordinator!, plan: planDigest } }
            : {}),
          onStep: (s) =>
            logger.info(
              `${opts.arm} ${s.label}${plan.repeats > 1 ? ` repeat ${s.repeat + 1}` : ""}`,
            ),
        });
        if (r.sentShares !== undefined) {
          logger.info(
            `${opts.arm}: shard ${shard!.index}/${shard!.count}: sent ${r.sentShares} share(s) to shard 0`,
          );
          return;
        }
        const invalid = r.measured.filter((p) => !p.valid);
        logger.info(
          `${opts.arm}: ${r.measured.length} point(s) measured, ${r.skipped} already complete${invalid.length ? `, ${invalid.length} INVALID` : ""}`,
        );
        if (invalid.length) process.exitCode = RUNNER_SOME_INVALID;
      } catch (err) {
        if (controller.signal.aborted)
          throw new UserError("interrupted; completed points are kept", { exitCode: 130 });
        throw err;
      } finally {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
      }
    });
}

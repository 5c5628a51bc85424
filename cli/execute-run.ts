/**
 * One experiment run as `inferbench run` does it, shared by `run` and `experiment run`: signals
 * (first: stop the point, collect, tear down; second: tear down at once), the pipeline, the
 * summary on stdout, and the exit status (1: resources left, 3: some points INVALID).
 */
import type { ExperimentOptions } from "../experiments/execute.ts";
import { UserError } from "../lib/errors.ts";
import { logger } from "../lib/logger.ts";
import type { StackConfig } from "../stacks/schema.ts";
import { planStack } from "../targets/plan-stack.ts";
import { formatRunSummary } from "./run-summary.ts";

/** What a run is asked for (the pipeline's own options; the rest is wired here). */
export type RunRequest = Pick<
  ExperimentOptions,
  "stacks" | "overrides" | "quick" | "interleave" | "resume" | "runsDir"
> & { keep: boolean };

/** Runs it; throws UserError with exit 1 or 3 when resources were left or points are INVALID. */
export async function executeRun(req: RunRequest): Promise<{ runId: string; dir: string }> {
  // Loaded on use: `serve` children start faster without the run pipeline's modules.
  const { runExperiment } = await import("../experiments/execute.ts");
  const { targetFor } = await import("../targets/index.ts");
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
      stacks: req.stacks.length ? req.stacks : ["local"],
      overrides: req.overrides,
      quick: req.quick,
      interleave: req.interleave,
      ...(req.resume ? { resume: req.resume } : {}),
      ...(req.runsDir ? { runsDir: req.runsDir } : {}),
      keep: req.keep,
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
    return { runId: result.runId, dir: result.dir };
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

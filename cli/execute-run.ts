/**
 * One experiment run as `inferbench run` does it, shared by `run` and `experiment run`: signals
 * (first: stop the point, collect, tear down; second: tear down at once), the pipeline, the
 * summary on stdout, and the exit status (1: resources left, 3: some points INVALID).
 */
import {
  type AutoRates,
  probeOverrides,
  saturationOf,
  sweepOverrides,
  sweepRates,
} from "../experiments/auto-rates.ts";
import type { ExperimentOptions, ExperimentResult } from "../experiments/execute.ts";
import { UserError } from "../lib/errors.ts";
import { logger } from "../lib/logger.ts";
import { type RunManifest, RunStore, type SaturationProbe } from "../results/store.ts";
import type { StackConfig } from "../stacks/schema.ts";
import { planStack } from "../targets/plan-stack.ts";
import { formatRunSummary } from "./run-summary.ts";

/** What a run is asked for (the pipeline's own options; the rest is wired here). */
export type RunRequest = Pick<
  ExperimentOptions,
  "stacks" | "overrides" | "quick" | "interleave" | "resume" | "runsDir" | "onStart"
> & {
  keep: boolean;
  /** Probe the saturation first (a run of its own), then sweep rates at fractions of it. */
  autoRates?: AutoRates;
};

/** Runs it; throws UserError with exit 1 or 3 when resources were left or points are INVALID. */
export async function executeRun(req: RunRequest): Promise<{ runId: string; dir: string }> {
  if (!req.autoRates) return verdict(await runPipeline(req));
  const a = req.autoRates;
  let probed: ExperimentResult;
  let base: Pick<RunRequest, "stacks" | "overrides" | "quick" | "interleave"> = req;
  if (req.resume) {
    const m = RunStore.open(req.resume, req.runsDir).readManifest();
    // The sweep itself resumes as any run; an interrupted probe is finished, then the sweep runs.
    if (m.probe) return verdict(await runPipeline(req));
    base = probeBase(m, a);
    probed = await runPipeline(req);
  } else {
    logger.info(
      `auto rates: probing the saturation first (concurrency ${a.probeConcurrency}, ${a.probeRequests} requests per arm)`,
    );
    probed = await runPipeline({ ...req, overrides: [...req.overrides, ...probeOverrides(a)] });
  }
  if (probed.leftovers.length)
    throw new UserError(`the probe run ${probed.runId} left resources behind; see above`, {
      exitCode: 1,
    });
  if (!probed.comparison) throw new UserError(`the probe run ${probed.runId} compared nothing`);
  const probe = saturationOf(probed.comparison, probed.runId, a);
  logger.info(
    `auto rates: saturation ${probe.saturationRps.toFixed(2)} req/s (${Object.entries(probe.perArm)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(", ")}); sweeping ${sweepRates(probe).join(", ")} req/s`,
  );
  const { resume: _r, ...fresh } = req;
  return verdict(
    await runPipeline(
      { ...fresh, ...base, overrides: [...base.overrides, ...sweepOverrides(probe, a)] },
      probe,
    ),
  );
}

/** What a probe run was asked for before its probe overrides: the sweep is asked the same. */
function probeBase(
  m: RunManifest,
  a: AutoRates,
): Pick<RunRequest, "stacks" | "overrides" | "quick" | "interleave"> {
  const probe = probeOverrides(a);
  const o = m.command.overrides;
  const tail = o.slice(o.length - probe.length);
  if (JSON.stringify(tail) !== JSON.stringify(probe))
    throw new UserError(`run ${m.runId} is not the probe of these auto rates`, {
      exitCode: 2,
      hint: "resume it without --auto-rates, or give the --auto-rates and --probe-* options it was started with",
    });
  return {
    stacks: m.command.stacks ?? [m.command.stack],
    overrides: o.slice(0, o.length - probe.length),
    quick: m.command.quick,
    interleave: m.command.interleave,
  };
}

/** Leftovers (exit 1) and INVALID points (exit 3) become the exit status. */
function verdict(result: ExperimentResult): { runId: string; dir: string } {
  if (result.leftovers.length)
    throw new UserError(`the run left resources behind; see above`, { exitCode: 1 });
  if (!result.allValid) {
    throw new UserError(
      "some load points are INVALID (the load generator fell behind, or a model had no successful request); see the report",
      { exitCode: 3 },
    );
  }
  return { runId: result.runId, dir: result.dir };
}

/** One run of the pipeline with the signals wired; prints its summary. */
async function runPipeline(req: RunRequest, probe?: SaturationProbe): Promise<ExperimentResult> {
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
      ...(req.onStart ? { onStart: req.onStart } : {}),
      ...(probe ? { probe } : {}),
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
    return result;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

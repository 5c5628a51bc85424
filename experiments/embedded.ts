/**
 * The embedded default: both arms of a local stack on emulated engines, end to end.
 * plan (per arm) → launch engine-sim + router per arm → per load point and repeat, the arms
 * interleaved (alternating order) so machine drift cancels out → scrape server metrics around
 * each point → compare → report. Every completed point is kept; `--resume <run-id>` continues.
 */
import { mkdirSync } from "node:fs";
import { relative } from "node:path";
import { UserError } from "../lib/errors.ts";
import type { Logger } from "../lib/logger.ts";
import { type LoadPointResult, runLoadPoint } from "../loadgen/run-point.ts";
import type { Comparison } from "../results/compare-types.ts";
import { compareRun } from "../results/run-sides.ts";
import {
  counterDeltas,
  type GaugeSample,
  type PointServerMetrics,
  scrape,
  startGaugeSampler,
} from "../results/server-metrics.ts";
import {
  gitInfo,
  hostFacts,
  newRunId,
  type PointRecord,
  packageVersions,
  type RunManifest,
  RunStore,
} from "../results/store.ts";
import type { Arm, LoadPoint, StackPlan } from "../stacks/plan-types.ts";
import { type LocalDeployment, launchLocal } from "../targets/local/launch.ts";

export const ARMS: Arm[] = ["baseline", "managed"];

/** `--quick`: the same pipeline on a reduced load (CI runs it; under 60 s on 2 cores). */
export const QUICK_OVERRIDES = [
  "workload.loadPoints=[{concurrency: 2}, {concurrency: 8}]",
  "workload.requestCount=24",
  "workload.outputTokensMean=48",
  "workload.outputTokensStddev=16",
  "run.warmupRequests=2",
  "run.repeats=1",
];

/**
 * The workload seed of one load point and repeat: the same on both arms, different between
 * points, so that no point runs on prefix caches warmed by the identical prompts of an earlier
 * one (a deterministic router would then look better for the wrong reason).
 */
export function pointSeed(seed: number, pointIndex: number, repeat: number): number {
  return seed + 1000 * pointIndex + repeat;
}

export function pointLabel(lp: LoadPoint): string {
  return lp.kind === "concurrency"
    ? `concurrency${lp.concurrency}`
    : `request_rate${lp.requestRate}`;
}

export interface EmbeddedRunOptions {
  stack: string;
  overrides: string[];
  quick: boolean;
  interleave: boolean;
  resume?: string;
  runsDir?: string;
  log: Logger;
  signal: AbortSignal;
  /** Plans both arms (the CLI passes planStack); injected so tests can use their own stacks. */
  planArm: (stack: string, overrides: string[]) => { plan: StackPlan; config: unknown };
  /** Progress lines (the CLI prints them). */
  onProgress?: (line: string) => void;
}

export interface EmbeddedRunResult {
  runId: string;
  dir: string;
  comparison: Comparison;
  reportHtml: string;
  allValid: boolean;
}

export async function runEmbedded(opts: EmbeddedRunOptions): Promise<EmbeddedRunResult> {
  const resuming = opts.resume !== undefined;
  const store = resuming
    ? RunStore.open(opts.resume!, opts.runsDir)
    : new RunStore(newRunId(), opts.runsDir);
  let command: RunManifest["command"] = {
    stack: opts.stack,
    overrides: opts.overrides,
    quick: opts.quick,
    interleave: opts.interleave,
  };
  let manifest: RunManifest | undefined;
  if (resuming) {
    manifest = store.readManifest();
    if (manifest.status === "complete")
      throw new UserError(`run ${store.runId} is already complete; nothing to resume`);
    command = manifest.command;
  }
  const extra = command.quick ? QUICK_OVERRIDES : [];
  const plans = {} as Record<Arm, StackPlan>;
  let config: unknown;
  for (const arm of ARMS) {
    const planned = opts.planArm(command.stack, [...command.overrides, ...extra, `mode=${arm}`]);
    if (planned.plan.target !== "local") {
      throw new UserError(
        `stack "${command.stack}" targets ${planned.plan.target}; the embedded run needs target: local`,
      );
    }
    plans[arm] = planned.plan;
    config = planned.config;
  }
  const now = new Date().toISOString();
  manifest = {
    schemaVersion: 1,
    runId: store.runId,
    status: "running",
    createdAt: manifest?.createdAt ?? now,
    updatedAt: now,
    command,
    target: "local",
    arms: ARMS,
    emulated: true,
    ...gitInfo(),
    packageVersions: packageVersions(),
    images: Object.fromEntries(
      ARMS.map((a) => [
        a,
        {
          engine: [...new Set(plans[a].engines.map((e) => e.image))],
          router: plans[a].router.image,
        },
      ]),
    ),
    plans,
    config,
    host: hostFacts(),
  };
  mkdirSync(store.dir, { recursive: true });
  store.writeManifest(manifest);
  opts.onProgress?.(`run ${store.runId}${resuming ? " (resumed)" : ""}: ${store.dir}`);

  const runner = plans.baseline.runner;
  const deployments = new Map<Arm, LocalDeployment>();
  const deploy = async (arm: Arm) => {
    if (deployments.has(arm)) return deployments.get(arm)!;
    opts.onProgress?.(
      `starting the ${arm} arm: ${plans[arm].engines.length} emulated engines + ${plans[arm].router.policy} router`,
    );
    mkdirSync(store.armDir(arm), { recursive: true });
    const d = await launchLocal(plans[arm], {
      dir: store.armDir(arm),
      log: opts.log,
      seed: runner.seed,
      signal: opts.signal,
    });
    deployments.set(arm, d);
    return d;
  };
  const undeploy = async (arm: Arm) => {
    const d = deployments.get(arm);
    deployments.delete(arm);
    await d?.stop();
  };

  // Schedule: point-major with alternating arm order when interleaved; arm-major otherwise.
  // The arms' plans have equal runner sections; points are identified by index.
  type Step = { arm: Arm; point: number; repeat: number };
  const steps: Step[] = [];
  const points = runner.loadPoints.map((_, i) => i);
  if (command.interleave) {
    let flip = false;
    for (let r = 0; r < runner.repeats; r++) {
      for (const point of points) {
        for (const arm of flip ? [...ARMS].reverse() : ARMS) steps.push({ arm, point, repeat: r });
        flip = !flip;
      }
    }
  } else {
    for (const arm of ARMS)
      for (let r = 0; r < runner.repeats; r++)
        for (const point of points) steps.push({ arm, point, repeat: r });
  }
  const labelOf = (s: Step) => pointLabel(runner.loadPoints[s.point]!);
  const todo = steps.filter((s) => !store.isPointComplete(s.arm, labelOf(s), s.repeat));
  if (todo.length < steps.length)
    opts.onProgress?.(
      `resuming: ${steps.length - todo.length} of ${steps.length} load points already complete`,
    );

  try {
    let done = steps.length - todo.length;
    for (const step of todo) {
      opts.signal.throwIfAborted();
      if (!command.interleave)
        for (const other of ARMS) if (other !== step.arm) await undeploy(other);
      const d = await deploy(step.arm);
      const label = labelOf(step);
      opts.onProgress?.(
        `[${++done}/${steps.length}] ${step.arm} ${label}${runner.repeats > 1 ? ` repeat ${step.repeat + 1}` : ""}`,
      );
      const rec = await measurePoint(store, step.arm, d, step.point, step.repeat, opts);
      if (!rec.valid)
        opts.log.warn(`${step.arm} ${label}: INVALID: ${rec.invalidReasons.join("; ")}`);
    }
  } catch (err) {
    const interrupted = opts.signal.aborted;
    store.writeManifest({
      ...manifest,
      status: interrupted ? "interrupted" : "failed",
      error: (err as Error).message,
    });
    if (interrupted) {
      throw new UserError(`interrupted; completed load points are kept in ${store.dir}`, {
        exitCode: 130,
        hint: `continue with: inferbench run --resume ${store.runId}`,
      });
    }
    throw err;
  } finally {
    await Promise.all(ARMS.map(undeploy));
  }

  const { comparison, reportHtml } = await compareRun(store);
  const allValid = comparison.rows.every((r) => r.a.valid && r.b.valid);
  store.writeManifest({ ...manifest, status: "complete", finishedAt: new Date().toISOString() });
  return {
    runId: store.runId,
    dir: store.dir,
    comparison,
    reportHtml,
    allValid,
  };
}

async function measurePoint(
  store: RunStore,
  arm: Arm,
  d: LocalDeployment,
  point: number,
  repeat: number,
  opts: EmbeddedRunOptions,
): Promise<PointRecord> {
  const runner = d.plan.runner;
  const lp = runner.loadPoints[point]!;
  const label = pointLabel(lp);
  const dir = store.pointDir(arm, label, repeat);
  mkdirSync(dir, { recursive: true });
  const endpoints = { ...d.engineUrls, router: d.routerUrl };
  const before = await scrape(endpoints);
  const sampler = startGaugeSampler(d.engineUrls);
  let result: LoadPointResult;
  let samples: GaugeSample[] = [];
  try {
    result = await runLoadPoint({
      url: d.routerUrl,
      models: runner.workload.models,
      workload: runner.workload,
      loadPoint: lp,
      seed: pointSeed(runner.seed, point, repeat),
      warmupRequests: runner.warmupRequests,
      artifactDir: dir,
      slo: runner.slo,
      signal: opts.signal,
      sessionHeader: d.plan.router.options.sessionHeader,
      emulated: true,
      progress: process.stderr.isTTY === true,
    });
  } finally {
    samples = await sampler.stop();
  }
  const after = await scrape(endpoints);
  const metrics: PointServerMetrics = {
    before,
    after,
    samples,
    deltas: counterDeltas(before, after),
  };
  store.writeJson(`${dir}/server-metrics.json`, metrics);
  const rec: PointRecord = {
    arm,
    label,
    repeat,
    loadPoint: lp,
    artifactDir: relative(store.dir, result.runDir),
    valid: result.valid && result.aborted === undefined,
    invalidReasons: [
      ...result.invalidReasons,
      ...(result.aborted ? [`aborted: ${result.aborted}`] : []),
    ],
    requestCount: result.requestCount,
    errorCount: result.errorCount,
    lagP99Ms: result.lagP99Ms,
    ...(result.targetRate !== undefined ? { targetRate: result.targetRate } : {}),
    ...(result.achievedRate !== undefined ? { achievedRate: result.achievedRate } : {}),
    ...(result.aborted !== undefined ? { aborted: result.aborted } : {}),
    engines: Object.fromEntries(d.plan.engines.map((e) => [e.name, e.model])),
  };
  if (result.aborted && opts.signal.aborted) opts.signal.throwIfAborted();
  // point.json last: its presence marks the point complete for resume.
  store.writeJson(`${dir}/point.json`, rec);
  return rec;
}

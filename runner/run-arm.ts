/**
 * The runner: the only code that measures. For one arm of an experiment plan, on whatever host it
 * runs on (in-process locally, a container next to the engines, a Kubernetes Job):
 * readiness (every engine's and the router's /health) → per step: scrape /metrics, sample gauges
 * while the load point runs (warm-up first, then the measured requests), scrape again, apply the
 * validity gate, write point.json last and atomically (its presence marks the point complete).
 */
import { mkdirSync } from "node:fs";
import { relative } from "node:path";
import { errorMessage, UserError } from "../lib/errors.ts";
import type { Logger } from "../lib/logger.ts";
import { nowEpochNs } from "../loadgen/client.ts";
import {
  type LoadPointResult,
  type RunLoadPointOptions,
  runLeadShard,
  runLoadPoint,
  runLoadShard,
} from "../loadgen/run-point.ts";
import { endpointPath } from "../results/genai-perf/artifacts.ts";
import {
  counterDeltas,
  type GaugeSample,
  type PointServerMetrics,
  scrape,
  startGaugeSampler,
} from "../results/server-metrics.ts";
import type { PointRecord, RunStore } from "../results/store.ts";
import type { Arm } from "../stacks/plan-types.ts";
import type { ArmEndpoints, ExperimentPlan, ExperimentStep } from "./plan-file.ts";
import { ShardCoordinator, ShardFollower, type ShardRole, START_LEAD_NS } from "./shards.ts";

/** `inferbench runner`'s exit status when it measured every step but some are INVALID. */
export const RUNNER_SOME_INVALID = 3;

export interface RunArmOptions {
  plan: ExperimentPlan;
  arm: Arm;
  endpoints: ArmEndpoints;
  store: RunStore;
  /** Step indices to run (default: every step of the arm, in plan order). */
  steps?: readonly number[];
  /** Skip steps whose point.json exists; without it such a step is refused (nothing is overwritten). */
  resume?: boolean;
  signal?: AbortSignal;
  log: Logger;
  readyTimeoutMs?: number;
  /** Called before each measured step (progress lines). */
  onStep?: (step: ExperimentStep) => void;
  /** A progress bar on stderr while a point runs. */
  progress?: boolean;
  /** One of N load generators (runner.parallelism): shard 0 measures and merges, others follow. */
  shard?: ShardRole;
  /**
   * Sent with every request and with the readiness check of `endpoints.router` (an endpoint's
   * Authorization), never to the engines' URLs, and never written (artifacts redact them).
   */
  headers?: Record<string, string>;
}

export interface RunArmResult {
  measured: PointRecord[];
  skipped: number;
  /** A follower shard: the steps whose share it sent to shard 0. */
  sentShares?: number;
}

/** The arm's steps to run, in plan order, checked against the plan. */
export function armSteps(
  plan: ExperimentPlan,
  arm: Arm,
  only?: readonly number[],
): ExperimentStep[] {
  if (!plan.arms[arm])
    throw new UserError(`the plan has no arm "${arm}"`, {
      hint: `arms in this plan: ${plan.armNames.join(", ")}`,
    });
  const mine = plan.steps.filter((s) => s.arm === arm);
  if (!only) return mine;
  const byIndex = new Map(mine.map((s) => [s.index, s]));
  return [...only]
    .sort((a, b) => a - b)
    .map((i) => {
      const s = byIndex.get(i);
      if (!s) throw new UserError(`step ${i} is not a step of arm "${arm}" in this plan`);
      return s;
    });
}

/** Polls URLs until each answers 200 (bounded; the error names what never became ready). */
export async function waitHealthy(
  urls: readonly string[],
  opts: {
    timeoutMs: number;
    signal?: AbortSignal;
    intervalMs?: number;
    /** Headers for one URL (credentials go to that URL only). */
    headers?: ReadonlyMap<string, Record<string, string>>;
  },
): Promise<void> {
  const pending = new Set(urls);
  const deadline = Date.now() + opts.timeoutMs;
  const last = new Map<string, string>();
  while (pending.size > 0) {
    opts.signal?.throwIfAborted();
    await Promise.all(
      [...pending].map(async (u) => {
        try {
          const r = await fetch(u, {
            signal: AbortSignal.timeout(2000),
            headers: opts.headers?.get(u) ?? {},
          });
          await r.arrayBuffer();
          if (r.status === 200) pending.delete(u);
          else last.set(u, `HTTP ${r.status}`);
        } catch (err) {
          last.set(u, (err as Error).message);
        }
      }),
    );
    if (pending.size === 0) return;
    if (Date.now() > deadline)
      throw new UserError(
        `not ready after ${Math.round(opts.timeoutMs / 1000)} s: ${[...pending].map((u) => `${u} (${last.get(u) ?? "no answer"})`).join(", ")}`,
        {
          exitCode: 1,
          hint: "check the engines' logs; engines load weights before /health turns 200",
        },
      );
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 250));
  }
}

/**
 * What each engine says it is (`GET /version`: vLLM answers `{"version": "0.11.0"}`), asked once
 * per runner call after readiness, so every point records the versions that served it. An engine
 * that does not answer is recorded as such, never guessed.
 */
export async function engineVersions(
  engines: Readonly<Record<string, string>>,
  signal?: AbortSignal,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  await Promise.all(
    Object.entries(engines).map(async ([name, url]) => {
      try {
        const r = await fetch(`${url}/version`, {
          signal: signal
            ? AbortSignal.any([signal, AbortSignal.timeout(5000)])
            : AbortSignal.timeout(5000),
        });
        const text = await r.text();
        const v = r.ok ? (JSON.parse(text) as { version?: unknown }).version : undefined;
        out[name] = typeof v === "string" && v ? v.slice(0, 100) : `unknown (HTTP ${r.status})`;
      } catch (err) {
        out[name] = `unknown (${(err as Error).message.slice(0, 80)})`;
      }
    }),
  );
  return out;
}

export async function runArm(opts: RunArmOptions): Promise<RunArmResult> {
  if (opts.shard && opts.shard.index > 0) return followArm(opts, opts.shard);
  const { plan, arm, store } = opts;
  const steps = armSteps(plan, arm, opts.steps);
  const todo = steps.filter((s) => {
    if (!store.isPointComplete(arm, s.label, s.repeat)) return true;
    if (!opts.resume)
      throw new UserError(
        `${store.pointDir(arm, s.label, s.repeat)} already holds a completed point`,
        { hint: "pass --resume to skip completed points, or use another --out folder" },
      );
    return false;
  });
  const coordinator =
    opts.shard && opts.shard.count > 1 ? await ShardCoordinator.start(opts.shard) : undefined;
  try {
    // Followers run what shard 0 runs: they ask for this list (even an empty one).
    coordinator?.setSteps(todo.map((s) => s.index));
    if (todo.length === 0) return { measured: [], skipped: steps.length };
    await waitReady(opts, opts.readyTimeoutMs ?? 10 * 60_000);
    const versions = await engineVersions(opts.endpoints.engines, opts.signal);
    const measured: PointRecord[] = [];
    for (const step of todo) {
      opts.signal?.throwIfAborted();
      opts.onStep?.(step);
      let rec: PointRecord;
      try {
        rec = await measureStep(opts, step, versions, coordinator);
      } catch (err) {
        coordinator?.fail(step.index, `shard 0: ${errorMessage(err)}`);
        throw err;
      }
      if (!rec.valid)
        opts.log.warn(`${arm} ${step.label}: INVALID: ${rec.invalidReasons.join("; ")}`);
      measured.push(rec);
    }
    return { measured, skipped: steps.length - todo.length };
  } finally {
    await coordinator?.close();
  }
}

/** Every engine's /health and the router's ready path (asked with the run's headers). */
function waitReady(opts: RunArmOptions, timeoutMs: number): Promise<void> {
  const e: ArmEndpoints = opts.endpoints;
  const front = `${e.router}${e.readyPath ?? "/health"}`;
  return waitHealthy([...Object.values(e.engines).map((u) => `${u}/health`), front], {
    timeoutMs,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.headers ? { headers: new Map([[front, opts.headers]]) } : {}),
  });
}

/** The request path under the router's URL: a base path (`https://host/openai`) is kept. */
function requestPath(router: string, endpointType: "chat" | "completions"): string | undefined {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(router) ? router : `http://${router}`;
  const prefix = new URL(withScheme).pathname.replace(/\/+$/, "");
  return prefix ? `${prefix}/${endpointPath(endpointType)}` : undefined;
}

/** The load generator's options for one step, the same in every shard. */
function pointOptions(opts: RunArmOptions, step: ExperimentStep, dir: string): RunLoadPointOptions {
  const { plan, arm } = opts;
  const path = requestPath(opts.endpoints.router, plan.workload.endpointType);
  return {
    url: opts.endpoints.router,
    ...(path ? { endpoint: path } : {}),
    ...(opts.headers ? { headers: opts.headers } : {}),
    models: plan.workload.models,
    workload: plan.workload,
    loadPoint: plan.loadPoints[step.point]!,
    seed: step.seed,
    warmupRequests: plan.warmupRequests,
    artifactDir: dir,
    slo: plan.slo,
    ...(opts.signal ? { signal: opts.signal } : {}),
    sessionHeader: plan.sessionHeader[arm] ?? plan.arms[arm]!.router.options.sessionHeader,
    emulated: plan.emulated,
    progress: opts.progress === true && !opts.shard,
  };
}

/**
 * A follower shard: the steps shard 0 runs, each warmed up, started at shard 0's common start and
 * sent back to it. Writes nothing; a failure is reported to shard 0 before this exits.
 */
async function followArm(opts: RunArmOptions, role: ShardRole): Promise<RunArmResult> {
  const follower = new ShardFollower(role, opts.signal);
  const timeoutMs = opts.readyTimeoutMs ?? 10 * 60_000;
  const steps = armSteps(opts.plan, opts.arm, await follower.steps(timeoutMs));
  if (steps.length === 0) return { measured: [], skipped: 0, sentShares: 0 };
  await waitReady(opts, timeoutMs);
  for (const step of steps) {
    opts.signal?.throwIfAborted();
    opts.onStep?.(step);
    try {
      const outcome = await runLoadShard(pointOptions(opts, step, ""), {
        index: role.index,
        count: role.count,
        startAt: () => follower.ready(step.index, timeoutMs),
      });
      await follower.send(step.index, outcome);
    } catch (err) {
      await follower.send(step.index, { error: errorMessage(err) }).catch(() => {});
      throw err;
    }
  }
  return { measured: [], skipped: 0, sentShares: steps.length };
}

/**
 * Shard 0 of N: its own share, started once every shard is warm, then the others' shares merged
 * into the one export. The others get as long as shard 0's own share took (and a minute more).
 */
async function measureShards(
  coordinator: ShardCoordinator,
  lo: RunLoadPointOptions,
  step: ExperimentStep,
  readyTimeoutMs: number,
  log: Logger,
  signal?: AbortSignal,
): Promise<LoadPointResult> {
  let startedAt = 0;
  const { result, perShard } = await runLeadShard(
    lo,
    {
      index: 0,
      count: coordinator.count,
      startAt: async () => {
        await coordinator.othersReady(step.index, readyTimeoutMs, signal);
        const t = nowEpochNs() + START_LEAD_NS;
        coordinator.release(step.index, t);
        startedAt = Date.now();
        return t;
      },
    },
    () => coordinator.collect(step.index, 60_000 + (Date.now() - startedAt), signal),
  );
  log.info(
    `${step.arm} ${step.label}: merged ${perShard.length} shards (${perShard.join(" + ")} requests)`,
  );
  return result;
}

async function measureStep(
  opts: RunArmOptions,
  step: ExperimentStep,
  versions: Record<string, string>,
  coordinator?: ShardCoordinator,
): Promise<PointRecord> {
  const { plan, arm, store, endpoints } = opts;
  const stack = plan.arms[arm]!;
  const lp = plan.loadPoints[step.point]!;
  const dir = store.pointDir(arm, step.label, step.repeat);
  mkdirSync(dir, { recursive: true });
  const all = { ...endpoints.engines, router: endpoints.router };
  const before = await scrape(all);
  const sampler = startGaugeSampler(endpoints.engines);
  let result: LoadPointResult;
  let samples: GaugeSample[] = [];
  try {
    const lo = pointOptions(opts, step, dir);
    result = coordinator
      ? await measureShards(
          coordinator,
          lo,
          step,
          opts.readyTimeoutMs ?? 10 * 60_000,
          opts.log,
          opts.signal,
        )
      : await runLoadPoint(lo);
  } finally {
    samples = await sampler.stop();
  }
  const after = await scrape(all);
  const metrics: PointServerMetrics = {
    before,
    after,
    samples,
    deltas: counterDeltas(before, after),
  };
  store.writeJson(`${dir}/server-metrics.json`, metrics);
  const rec: PointRecord = {
    arm,
    label: step.label,
    repeat: step.repeat,
    step: step.index,
    seed: step.seed,
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
    engines: Object.fromEntries(stack.engines.map((e) => [e.name, e.model])),
    engineVersions: versions,
  };
  // An interrupted point is not complete: no point.json, so a resume measures it again.
  if (result.aborted && opts.signal?.aborted) opts.signal.throwIfAborted();
  store.writeJson(`${dir}/point.json`, rec);
  return rec;
}

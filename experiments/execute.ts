/**
 * The executor: one run path for every target. Plans the arms into one experiment plan, opens the
 * run store (new, or a resume that must match the stored plan), then provision → for each block of
 * consecutive steps of one arm: deploy it (undeploying the other where the host cannot hold both),
 * run the runner, collect → undeploy, destroy and audit in `finally` → compare + report.
 * Interrupts: the first abort abandons the current point, collects and destroys; the second
 * skips collecting and destroys at once.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { errorMessage, UserError } from "../lib/errors.ts";
import type { Logger } from "../lib/logger.ts";
import { newRunId } from "../lib/run-id.ts";
import type { Comparison } from "../results/compare-types.ts";
import { compareRun } from "../results/run-sides.ts";
import {
  gitInfo,
  hostFacts,
  packageVersions,
  type RunManifest,
  RunStore,
  type SaturationProbe,
} from "../results/store.ts";
import type { ExperimentPlan, ExperimentStep } from "../runner/plan-file.ts";
import { parseExperimentPlan } from "../runner/plan-file.ts";
import type { Arm, StackPlan } from "../stacks/plan-types.ts";
import type { Leftover, Target, TargetContext } from "../targets/types.ts";
import { runBudget, watchBudget } from "./budget.ts";
import { experimentPlan, planDifferences, planFingerprint, QUICK_OVERRIDES } from "./plan.ts";

export const PLAN_FILE = "plan.json";

export interface ExperimentOptions {
  /** One stack (local: both arms from it) or one stack per arm. */
  stacks: string[];
  overrides: string[];
  quick: boolean;
  interleave: boolean;
  resume?: string;
  runsDir?: string;
  log: Logger;
  /** First abort: stop measuring; second (hard): skip collecting. */
  signal: AbortSignal;
  hardSignal?: AbortSignal;
  /** Plans one arm (the CLI passes planStack); injected so tests can use their own stacks. */
  planArm: (stack: string, overrides: string[]) => { plan: StackPlan; config: unknown };
  /** Makes the target for the plan, given each arm's stack config (unredacted: it may carry secrets). */
  target: (plan: ExperimentPlan, configs: Record<string, unknown>) => Target | Promise<Target>;
  /** Keep what was provisioned (cloud `--keep`). */
  keep?: boolean;
  onProgress?: (line: string) => void;
  /** Called once the run folder exists (before anything runs): its id, for a later resume. */
  onStart?: (runId: string, dir: string) => void;
  /** A sweep of auto request rates: the probe its load points come from (kept in the manifest). */
  probe?: SaturationProbe;
}

export interface ExperimentResult {
  runId: string;
  dir: string;
  comparison?: Comparison;
  reportHtml?: string;
  allValid: boolean;
  destroyed: boolean;
  leftovers: Leftover[];
  cleanup: string[];
}

/** The arms' plans: local stacks give both arms from one stack; otherwise one stack per arm. */
export function planArms(
  stacks: readonly string[],
  overrides: readonly string[],
  quick: boolean,
  planArm: ExperimentOptions["planArm"],
): { plans: StackPlan[]; configs: Record<string, unknown> } {
  const extra = quick ? QUICK_OVERRIDES : [];
  const plans: StackPlan[] = [];
  const configs: Record<string, unknown> = {};
  const add = (stack: string, more: string[]) => {
    // --quick first, so that a --set given with it still wins.
    const { plan, config } = planArm(stack, [...extra, ...overrides, ...more]);
    plans.push(plan);
    configs[plan.mode] = config;
  };
  if (stacks.length === 1) {
    // One stack: both arms from it, switched by `mode`.
    for (const arm of ["baseline", "managed"] as const) add(stacks[0]!, [`mode=${arm}`]);
  } else for (const s of stacks) add(s, []);
  return { plans, configs };
}

/** Consecutive steps of one arm: one deploy and one runner call each. */
export function blocksOf(
  steps: readonly ExperimentStep[],
): { arm: Arm; steps: ExperimentStep[] }[] {
  const out: { arm: Arm; steps: ExperimentStep[] }[] = [];
  for (const s of steps) {
    const last = out.at(-1);
    if (last && last.arm === s.arm) last.steps.push(s);
    else out.push({ arm: s.arm, steps: [s] });
  }
  return out;
}

function openStore(opts: ExperimentOptions): {
  store: RunStore;
  plan: ExperimentPlan;
  manifest: RunManifest;
  configs: Record<string, unknown>;
} {
  if (opts.resume !== undefined) {
    const store = RunStore.open(opts.resume, opts.runsDir);
    const manifest = store.readManifest();
    if (manifest.status === "complete")
      throw new UserError(`run ${store.runId} is already complete; nothing to resume`);
    const c = manifest.command;
    const { plans, configs } = planArms(c.stacks ?? [c.stack], c.overrides, c.quick, opts.planArm);
    const plan = experimentPlan({
      stacks: c.stacks ?? [c.stack],
      overrides: c.overrides,
      quick: c.quick,
      plans,
      interleave: c.interleave,
    });
    const file = store.file(PLAN_FILE);
    if (existsSync(file)) {
      const stored = parseExperimentPlan(readFileSync(file, "utf8"), file);
      if (planFingerprint(stored) !== planFingerprint(plan))
        throw new UserError(
          `run ${store.runId} was made with a different plan; resuming it would mix two measurements`,
          {
            hint: `what differs: ${planDifferences(stored, plan).join(", ")} (stack files changed since?); start a new run instead`,
          },
        );
    }
    return { store, plan, manifest, configs };
  }
  const { plans, configs } = planArms(opts.stacks, opts.overrides, opts.quick, opts.planArm);
  const plan = experimentPlan({
    stacks: opts.stacks,
    overrides: opts.overrides,
    quick: opts.quick,
    plans,
    interleave: opts.interleave,
  });
  const store = new RunStore(newRunId(), opts.runsDir);
  const now = new Date().toISOString();
  const manifest: RunManifest = {
    schemaVersion: 1,
    runId: store.runId,
    status: "running",
    createdAt: now,
    updatedAt: now,
    command: {
      stack: opts.stacks[0]!,
      stacks: opts.stacks,
      overrides: opts.overrides,
      quick: opts.quick,
      interleave: opts.interleave,
    },
    target: plan.target,
    arms: plan.armNames,
    emulated: plan.emulated,
    ...gitInfo(),
    packageVersions: packageVersions(),
    images: Object.fromEntries(
      plan.armNames.map((a) => [
        a,
        {
          engine: [...new Set(plan.arms[a]!.engines.map((e) => e.image))],
          router: plan.arms[a]!.router.image,
        },
      ]),
    ),
    plans: plan.arms,
    config: configs,
    host: hostFacts(),
    ...(opts.probe ? { probe: opts.probe } : {}),
  };
  return { store, plan, manifest, configs };
}

export async function runExperiment(opts: ExperimentOptions): Promise<ExperimentResult> {
  const { store, plan, manifest: opened, configs } = openStore(opts);
  const resuming = opts.resume !== undefined;
  mkdirSync(store.dir, { recursive: true });
  opts.onStart?.(store.runId, store.dir);
  const unlock = store.lock((m) => opts.log.warn(m));
  try {
    return await execute(opts, { store, plan, opened, configs, resuming });
  } finally {
    unlock();
  }
}

/** The run itself, under the run folder's lock. */
async function execute(
  opts: ExperimentOptions,
  run: {
    store: RunStore;
    plan: ExperimentPlan;
    opened: RunManifest;
    /** Unredacted, as planned now (a resume's stored config is redacted). */
    configs: Record<string, unknown>;
    resuming: boolean;
  },
): Promise<ExperimentResult> {
  const { store, plan, opened, configs, resuming } = run;
  let manifest: RunManifest = {
    ...opened,
    status: "running",
    planFingerprint: planFingerprint(plan),
  };
  store.writeJson(store.file(PLAN_FILE), plan);
  store.writeManifest(manifest);
  opts.onProgress?.(`run ${store.runId}${resuming ? " (resumed)" : ""}: ${store.dir}`);
  if (plan.swaps.count > 0)
    opts.onProgress?.(
      `plan: ${plan.order} order, ${plan.swaps.count} arm swap(s); ${plan.swaps.note}`,
    );

  const hard = opts.hardSignal ?? new AbortController().signal;
  // Ctrl-C, or run.budgetUsd reached: the same stop (collect what is done, tear down).
  const budget = new AbortController();
  const signal = AbortSignal.any([opts.signal, budget.signal]);
  const ctx: TargetContext = {
    plan,
    store,
    log: opts.log,
    signal,
    hardSignal: hard,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    saveInfra: (facts) => {
      manifest = { ...manifest, infra: { ...(manifest.infra ?? { state: "none" }), ...facts } };
      store.writeManifest(manifest);
    },
    ...(opened.infra ? { previousInfra: opened.infra } : {}),
  };
  const target = await opts.target(plan, configs);
  const todo = plan.steps.filter((s) => !store.isPointComplete(s.arm, s.label, s.repeat));
  if (todo.length < plan.steps.length)
    opts.onProgress?.(
      `resuming: ${plan.steps.length - todo.length} of ${plan.steps.length} load points already complete`,
    );

  const stopWatching = watchBudget({
    budgetUsd: runBudget(configs),
    billing: () => manifest.infra?.billing,
    runId: store.runId,
    controller: budget,
  });
  let failure: unknown;
  let destroyed = false;
  let leftovers: Leftover[] = [];
  let cleanup: string[] = [];
  const deployed = new Set<Arm>();
  try {
    await target.provision(ctx);
    let done = plan.steps.length - todo.length;
    for (const block of blocksOf(todo)) {
      signal.throwIfAborted();
      if (!target.sideBySide)
        for (const other of [...deployed])
          if (other !== block.arm) {
            await target.undeployArm(other, ctx);
            deployed.delete(other);
          }
      if (!deployed.has(block.arm)) {
        // Counted as deployed before it is: a deploy that fails or is interrupted half-way still
        // gets its undeploy in `finally`.
        deployed.add(block.arm);
        await target.deployArm(block.arm, ctx);
      }
      for (const s of block.steps)
        opts.onProgress?.(
          `[${++done}/${plan.steps.length}] ${s.arm} ${s.label}${plan.repeats > 1 ? ` repeat ${s.repeat + 1}` : ""}`,
        );
      try {
        await target.runArm(block.arm, block.steps, ctx);
      } finally {
        // Completed points come home also when the block failed or was interrupted.
        if (!hard.aborted)
          await target
            .collect(block.arm, ctx)
            .catch((err) => opts.log.error(`collecting ${block.arm}: ${errorMessage(err)}`));
      }
    }
  } catch (err) {
    failure = err;
  } finally {
    stopWatching(); // what is left is teardown: the budget has nothing more to stop
    for (const arm of deployed)
      await target
        .undeployArm(arm, ctx)
        .catch((err) => opts.log.warn(`undeploying ${arm}: ${errorMessage(err)}`));
    // `run.destroyAfterRun: false` in a stack keeps the host, as `--keep` does.
    const keep = opts.keep || Object.values(plan.arms).some((p) => !p.runner.destroyAfterRun);
    if (keep && !signal.aborted) {
      ctx.saveInfra({ state: "kept" });
    } else {
      destroyed = await target.destroy(ctx).catch((err) => {
        opts.log.error(`destroy failed: ${errorMessage(err)}`);
        return false;
      });
      try {
        leftovers = await target.audit(ctx);
        cleanup = target.cleanupCommands?.(leftovers, ctx) ?? [];
        if (leftovers.length)
          opts.log.error(
            `left behind by run ${store.runId}: ${leftovers.map((l) => `${l.kind} ${l.name}`).join(", ")}${cleanup.length ? `\n${cleanup.map((c) => `  ${c}`).join("\n")}` : ""}`,
          );
      } catch (err) {
        opts.log.warn(`audit failed: ${errorMessage(err)}`);
      }
      if (manifest.infra) ctx.saveInfra({ leftovers, cleanup });
    }
  }

  if (failure !== undefined) {
    const interrupted = opts.signal.aborted;
    const overBudget = !interrupted && budget.signal.aborted;
    if (overBudget) failure = budget.signal.reason;
    store.writeManifest({
      ...manifest,
      status: interrupted ? "interrupted" : "failed",
      error: errorMessage(failure),
    });
    if (interrupted)
      throw new UserError(`interrupted; completed load points are kept in ${store.dir}`, {
        exitCode: 130,
        hint: `continue with: inferbench run --resume ${store.runId}`,
      });
    throw failure;
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
    destroyed,
    leftovers,
    cleanup,
  };
}

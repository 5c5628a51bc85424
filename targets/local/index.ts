/**
 * The local target (embedded default): each arm's engine-sim + router as child processes on
 * loopback, side by side; the runner runs in-process and writes straight into the run store.
 */
import { mkdirSync } from "node:fs";
import { runArm } from "../../runner/run-arm.ts";
import type { Arm } from "../../stacks/plan-types.ts";
import type { Leftover, Target } from "../types.ts";
import { type LocalDeployment, launchLocal } from "./launch.ts";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function localTarget(opts: { readyTimeoutMs?: number } = {}): Target {
  const deployments = new Map<Arm, LocalDeployment>();
  const started: number[] = [];
  const stop = async (arm: Arm) => {
    const d = deployments.get(arm);
    deployments.delete(arm);
    await d?.stop();
  };
  return {
    kind: "local",
    sideBySide: true,
    async provision() {},
    async deployArm(arm, ctx) {
      if (deployments.has(arm)) return;
      const plan = ctx.plan.arms[arm]!;
      ctx.onProgress?.(
        `starting the ${arm} arm: ${plan.engines.length} emulated engines + ${plan.router.policy} router`,
      );
      mkdirSync(ctx.store.armDir(arm), { recursive: true });
      const d = await launchLocal(plan, {
        dir: ctx.store.armDir(arm),
        log: ctx.log,
        seed: plan.runner.seed,
        signal: ctx.signal,
        ...(opts.readyTimeoutMs ? { readyTimeoutMs: opts.readyTimeoutMs } : {}),
      });
      started.push(...d.pids);
      deployments.set(arm, d);
    },
    async runArm(arm, steps, ctx) {
      const d = deployments.get(arm);
      if (!d) throw new Error(`arm ${arm} is not deployed`);
      await runArm({
        plan: ctx.plan,
        arm,
        endpoints: { router: d.routerUrl, engines: d.engineUrls },
        store: ctx.store,
        steps: steps.map((s) => s.index),
        resume: true,
        signal: ctx.signal,
        log: ctx.log,
        progress: process.stderr.isTTY === true,
      });
    },
    async collect() {},
    undeployArm: async (arm) => stop(arm),
    async destroy() {
      await Promise.all([...deployments.keys()].map(stop));
      return true;
    },
    async audit(): Promise<Leftover[]> {
      return started.filter(alive).map((pid) => ({ kind: "process", name: String(pid) }));
    },
  };
}

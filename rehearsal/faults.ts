/**
 * Fault rehearsals on the rehearsal host, each through the kit's real executor and ssh target:
 * - a second run against a host another run holds: refused, naming the holder;
 * - Ctrl-C during provision, deploy, warm-up and a load point: exit 130, completed points kept,
 *   nothing left on the host, the lock released; the interrupted run then resumes and measures
 *   only what is missing;
 * - the network drops for 20 s (the host's veth down) during a point: the run rides it out;
 * - the host dies mid-point (every process in its namespace killed): noticed within 60 s, the run
 *   is marked failed with its completed points — brought home as each completed, not after the
 *   arm's block — and resumes on another host, measuring only the rest.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { type ExperimentOptions, runExperiment } from "../experiments/execute.ts";
import { UserError } from "../lib/errors.ts";
import { createLogger } from "../lib/logger.ts";
import { RunStore } from "../results/store.ts";
import { loadPointLabel } from "../stacks/load-point.ts";
import type { StackConfig } from "../stacks/schema.ts";
import { planStack } from "../targets/plan-stack.ts";
import { sshTarget } from "../targets/ssh/index.ts";
import { rehearsalStack } from "./run-ssh.ts";
import type { VmHost } from "./vm-host.ts";

export interface FaultResult {
  fault: string;
  seconds: number;
  detail: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes the fault stack (one model, one replica, short points) for host `h`; returns its name. */
function writeStack(dir: string, h: VmHost, keyFile: string): string {
  const stack = rehearsalStack(h, keyFile) as { config: Record<string, unknown> };
  stack.config["inferbench:models"] = [
    {
      name: "llama-3.1-8b",
      hfPath: "meta-llama/Llama-3.1-8B-Instruct",
      replicas: 1,
      maxModelLen: 8192,
      profile: "llama-3.1-8b@h100",
    },
  ];
  stack.config["inferbench:gpus"] = { type: "h100-80gb", count: 1 };
  stack.config["inferbench:run"] = { repeats: 1, warmupRequests: 1 };
  // Points long enough (several seconds) that a fault lands inside one.
  (stack.config["inferbench:workload"] as Record<string, unknown>).requestCount = 40;
  (stack.config["inferbench:workload"] as Record<string, unknown>).outputTokensMean = 160;
  writeFileSync(join(dir, "Pulumi.rehearsal-fault.yaml"), stringify(stack));
  return "rehearsal-fault";
}

function options(
  stacksDir: string,
  runsDir: string,
  signal: AbortSignal,
  log: (l: string) => void,
  extra: Partial<ExperimentOptions> = {},
): ExperimentOptions {
  return {
    stacks: ["rehearsal-fault"],
    overrides: [],
    quick: false,
    interleave: true,
    runsDir,
    log: createLogger("fault", log),
    signal,
    planArm: (s, o) => {
      const { plan, loaded } = planStack(s, o, { stacksDir });
      return { plan, config: loaded.config };
    },
    target: (_p, configs) => sshTarget(configs as Record<string, StackConfig>),
    onProgress: log,
    ...extra,
  };
}

/** Resolves when `pred(line)` holds for a progress line (polled from the collected lines). */
async function until(lines: string[], pred: (l: string) => boolean, ms: number, what: string) {
  const t0 = Date.now();
  while (!lines.some(pred)) {
    if (Date.now() - t0 > ms) throw new Error(`fault rehearsal: timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** What a host still holds after a run (containers, networks, volumes, the run lock). */
export type HostLeftovers = (h: VmHost) => Promise<string[]>;

/**
 * Resolves when the host holds a completed point of the run (the host's filesystem is this
 * machine's: only its network is apart), i.e. the runner is into the next point.
 */
async function untilPointOnHost(x: VmHost, lines: string[], ms: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const id = runIdIn(lines);
    if (id) {
      for (const project of existsSync(x.workDir) ? readdirSync(x.workDir) : []) {
        const arm = project.replace(/^inferbench-/, "");
        if (
          existsSync(
            join(x.workDir, project, "results", id, arm, "points", "concurrency2", "point.json"),
          )
        )
          return;
      }
    }
    if (Date.now() - t0 > ms)
      throw new Error("fault rehearsal: timed out waiting for a completed point on the host");
    await sleep(200);
  }
}

function runIdIn(lines: readonly string[]): string | undefined {
  for (const l of lines) {
    const m = /^run (\d{8}-\d{6}-[0-9a-f]{4})/.exec(l);
    if (m) return m[1]!;
  }
  return undefined;
}

function runIdOf(lines: readonly string[]): string {
  const id = runIdIn(lines);
  if (!id) throw new Error("no run id in the progress lines");
  return id;
}

/** How many of the run's points are complete in the local run store. */
function keptPoints(store: RunStore): number {
  const m = store.readManifest();
  return m.arms.flatMap((a) =>
    m.plans[a]!.runner.loadPoints.map(loadPointLabel).filter((p) => store.isPointComplete(a, p, 0)),
  ).length;
}

export async function rehearseFaults(opts: {
  host: VmHost;
  /** A second host, to be killed (its namespace's processes), then resumed on `host`. */
  victim: VmHost;
  workDir: string;
  log: (line: string) => void;
  leftovers: HostLeftovers;
}): Promise<FaultResult[]> {
  const { host: h, victim, workDir, log } = opts;
  const expectClean = async (x: VmHost, what: string) => {
    const left = await opts.leftovers(x);
    if (left.length) throw new Error(`${what}: left on the host: ${left.join("; ")}`);
  };
  const keyOf = (x: VmHost) => {
    const f = join(workDir, `key-${x.name}`);
    writeFileSync(f, x.privateKey, { mode: 0o600 });
    return f;
  };
  const stacksDir = join(workDir, "stacks");
  const runsDir = join(workDir, "fault-runs");
  writeStack(stacksDir, h, keyOf(h));
  const out: FaultResult[] = [];
  const timed = async (fault: string, fn: () => Promise<string>) => {
    const t0 = performance.now();
    const detail = await fn();
    out.push({ fault, seconds: (performance.now() - t0) / 1000, detail });
    log(`fault ${fault}: ${detail} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  };

  await timed("second run on a held host; Ctrl-C during a point; resume", async () => {
    const lines: string[] = [];
    const ac = new AbortController();
    const first = runExperiment(options(stacksDir, runsDir, ac.signal, (l) => lines.push(l)));
    await until(lines, (l) => l.startsWith("[1/"), 120_000, "the first point");
    const second = await runExperiment(
      options(stacksDir, runsDir, new AbortController().signal, () => {}),
    ).then(
      () => "accepted",
      (e: Error) => e.message,
    );
    if (!/is in use by run/.test(second))
      throw new Error(`a second run on a held host was not refused: ${second}`);
    // Into the second point of the first arm, then Ctrl-C.
    await untilPointOnHost(h, lines, 180_000);
    await sleep(2000);
    ac.abort(new Error("SIGINT"));
    const code = await first.then(
      () => 0,
      (e: unknown) => (e instanceof UserError ? e.exitCode : 1),
    );
    if (code !== 130) throw new Error(`Ctrl-C during a point ended with ${code}, expected 130`);
    await expectClean(h, "Ctrl-C during a point");
    const runId = runIdOf(lines);
    const store = RunStore.open(runId, runsDir);
    const kept = store.readManifest();
    if (kept.status !== "interrupted")
      throw new Error(`status ${kept.status}, expected interrupted`);
    const done = kept.arms.flatMap((a) =>
      ["concurrency2", "concurrency8"].filter((p) => store.isPointComplete(a, p, 0)),
    ).length;
    if (done < 1) throw new Error("no completed point was kept after Ctrl-C");
    const resumedLines: string[] = [];
    const r = await runExperiment({
      ...options(stacksDir, runsDir, new AbortController().signal, (l) => resumedLines.push(l)),
      resume: runId,
    });
    if (!resumedLines.some((l) => l.includes(`resuming: ${done} of 4`)))
      throw new Error(`the resume did not skip the ${done} kept point(s)`);
    await expectClean(h, "after the resume");
    return `second run refused; Ctrl-C → 130 with ${done} point(s) kept, host clean; resume measured the other ${4 - done}, ${r.allValid ? "all valid" : "some INVALID"}`;
  });

  await timed("Ctrl-C during provision, during warm-up", async () => {
    const interruptAt = async (pred: (l: string) => boolean, delayMs: number, what: string) => {
      const lines: string[] = [];
      const ac = new AbortController();
      const p = runExperiment(options(stacksDir, runsDir, ac.signal, (l) => lines.push(l)));
      await until(lines, pred, 120_000, what);
      await sleep(delayMs);
      ac.abort(new Error("SIGINT"));
      const code = await p.then(
        () => 0,
        (e: unknown) => (e instanceof UserError ? e.exitCode : 1),
      );
      if (code !== 130) throw new Error(`Ctrl-C during ${what}: exit ${code}, expected 130`);
      await expectClean(h, `Ctrl-C during ${what}`);
      const store = RunStore.open(runIdOf(lines), runsDir);
      const m = store.readManifest();
      if (m.status !== "interrupted" || m.infra?.state !== "destroyed")
        throw new Error(`Ctrl-C during ${what}: status ${m.status}, infra ${m.infra?.state}`);
      return { lines, kept: keptPoints(store) };
    };
    // The run's first line comes before provision (connect, host checks, the lock).
    const prov = await interruptAt((l) => l.startsWith("run "), 0, "provision");
    if (prov.lines.some((l) => l.includes(": deploying")))
      throw new Error("Ctrl-C during provision: the run went on to deploy");
    // The runner's first second: the endpoints' health, then the point's warm-up requests.
    const warm = await interruptAt((l) => l.startsWith("[1/"), 1000, "warm-up");
    if (warm.kept !== 0) throw new Error(`Ctrl-C during warm-up kept ${warm.kept} point(s)`);
    return "both exit 130, interrupted, host clean, lock released; provision stopped before any deploy, warm-up kept no point";
  });

  await timed("Ctrl-C during deploy", async () => {
    const lines: string[] = [];
    const ac = new AbortController();
    const p = runExperiment(options(stacksDir, runsDir, ac.signal, (l) => lines.push(l)));
    await until(lines, (l) => l.includes(": deploying"), 60_000, "the deploy");
    await sleep(500);
    ac.abort(new Error("SIGINT"));
    const code = await p.then(
      () => 0,
      (e: unknown) => (e instanceof UserError ? e.exitCode : 1),
    );
    if (code !== 130) throw new Error(`exit ${code}, expected 130`);
    await expectClean(h, "Ctrl-C during deploy");
    return "exit 130, nothing left, lock released";
  });

  await timed("network down 20 s during a point", async () => {
    const lines: string[] = [];
    const p = runExperiment(
      options(stacksDir, runsDir, new AbortController().signal, (l) => lines.push(l)),
    );
    await until(lines, (l) => l.startsWith("[1/"), 120_000, "the runner");
    await sleep(3000);
    const veth = `rh-${h.name}`;
    execFileSync("ip", ["link", "set", veth, "down"]);
    await sleep(20_000);
    execFileSync("ip", ["link", "set", veth, "up"]);
    const r = await p;
    await expectClean(h, "after the network drop");
    return `the SSH session rode out the drop (keepalive 10 s × 5): run complete, ${r.allValid ? "all valid" : "some INVALID (the point under the drop)"}`;
  });

  await timed("the host dies mid-point; resume on another host", async () => {
    writeStack(stacksDir, victim, keyOf(victim));
    const lines: string[] = [];
    // Its outcome is taken at once: a step below that throws must not leave the run's rejection
    // unhandled (that ended a whole CI run once).
    const outcome = runExperiment(
      options(stacksDir, runsDir, new AbortController().signal, (l) => lines.push(l)),
    ).then(
      () => undefined,
      (e: Error) => e,
    );
    await untilPointOnHost(victim, lines, 180_000);
    // The completed point is brought home while the runner goes on (not after the block).
    const runDir = join(runsDir, runIdOf(lines));
    const t0 = Date.now();
    while (
      !existsSync(join(runDir, "managed", "points", "concurrency2", "point.json")) &&
      !existsSync(join(runDir, "baseline", "points", "concurrency2", "point.json"))
    ) {
      if (Date.now() - t0 > 20_000)
        throw new Error("a point completed on the host was not brought home while the runner ran");
      await sleep(200);
    }
    const killedAt = performance.now();
    // Every process of the host: its sshd (listener and sessions), dockerd, containerd, containers.
    const pids = execFileSync("ip", ["netns", "pids", victim.name], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean);
    // One by one: a process that ended between the listing and the kill is not an error.
    for (const pid of pids)
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
      }
    const err = await outcome;
    const noticed = (performance.now() - killedAt) / 1000;
    if (!err) throw new Error("the run succeeded although its host died");
    if (noticed > 60) throw new Error(`the host's death was noticed after ${noticed.toFixed(0)} s`);
    const runId = runIdOf(lines);
    const store = RunStore.open(runId, runsDir);
    const failedStatus = store.readManifest().status;
    if (failedStatus !== "failed") throw new Error(`status ${failedStatus}, expected failed`);
    const kept = keptPoints(store);
    if (kept < 1) throw new Error("the point completed before the host died was lost");
    // Resume on the live host: same stack, its address and key changed.
    writeStack(stacksDir, h, keyOf(h));
    const resumed: string[] = [];
    await runExperiment({
      ...options(stacksDir, runsDir, new AbortController().signal, (l) => resumed.push(l)),
      resume: runId,
    });
    if (!resumed.some((l) => l.includes(`resuming: ${kept} of 4`)))
      throw new Error(`the resume did not keep the ${kept} completed point(s)`);
    await expectClean(h, "after the resume on another host");
    const status = RunStore.open(runId, runsDir).readManifest().status;
    return `noticed in ${noticed.toFixed(1)} s (${err.message.split("\n")[0]!.slice(0, 120)}); ${kept} point(s) kept; resumed on another host: ${status}`;
  });
  return out;
}

/**
 * `npm run rehearse:kube`: the Kubernetes targets on real parts, on this machine. Installs (cached
 * by version), builds the kit image from this repository on a rehearsal host's dockerd and imports
 * it into a real single-node Kubernetes (rehearsal/kube-cluster.sh), then:
 * - the shipped vke pair's real (GPU) objects pass the API server's strict server-side dry run;
 * - a whole `kubeconfig`-target run, both arms side by side in two namespaces, through the real
 *   Pulumi engine and Kubernetes provider (engine-sim in place of vLLM, labelled EMULATED): results
 *   home, compare + report, namespaces gone, the audit by label clean, no Pulumi stack left;
 * - Ctrl-C in the middle of a run: nothing with the run label is left;
 * - nothing a pod sent left the machine (the uplink drop rules' counters stay 0).
 * The cluster is torn down on success, failure and Ctrl-C. Prints the time of every step.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { stringify } from "yaml";
import { runExperiment } from "../experiments/execute.ts";
import { experimentPlan } from "../experiments/plan.ts";
import { kubeCluster, loadKubeConfig } from "../kube/cluster.ts";
import { renderKubeArm, runSelector } from "../kube/render.ts";
import { createLogger } from "../lib/logger.ts";
import { DEPLOYED_IMAGES_FILE, EVENTS_FILE, PODS_LOG_FILE } from "../results/store.ts";
import type { StackConfig } from "../stacks/schema.ts";
import { bindPlanForKube } from "../targets/kube/bind.ts";
import { kubeTarget, renderOptionsOf } from "../targets/kube/index.ts";
import { planStack } from "../targets/plan-stack.ts";
import { buildKitImage, formatTimings, KIT_IMAGE_TAG } from "./rehearse-vm.ts";
import { REHEARSAL_ARM_CONFIG, REHEARSAL_IMAGES, tagServiceImages } from "./run-ssh.ts";
import {
  installEnv,
  installRehearsal,
  runScript,
  type StepTiming,
  startVmHost,
  vmHostAvailable,
} from "./vm-host.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
export const KUBE_SCRIPT = join(HERE, "kube-cluster.sh");

async function kubeScript(args: string[], log: (l: string) => void): Promise<string> {
  const r = await runScript(KUBE_SCRIPT, args, { onLog: log });
  if (r.code !== 0)
    throw new Error(
      `kube-cluster.sh ${args.join(" ")} exited ${r.code}: ${r.stderr.trim().slice(-1500)}`,
    );
  return r.stdout.trim();
}

function run(
  bin: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {},
): Promise<string> {
  return new Promise((res, rej) => {
    const c = spawn(bin, args, { env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (err += d));
    c.on("error", rej);
    c.on("close", (code) =>
      code === 0
        ? res(out)
        : rej(new Error(`${bin} ${args.slice(0, 3).join(" ")}: exit ${code}: ${err.slice(-1500)}`)),
    );
    c.stdin.end(opts.stdin ?? "");
  });
}

/** The rehearsal's stack: one model, two replicas per arm, on the cluster's admin kubeconfig. */
export function kubeRehearsalStack(kubeconfigPath: string): Record<string, unknown> {
  return {
    config: {
      "inferbench:target": "kubeconfig",
      ...structuredClone(REHEARSAL_ARM_CONFIG), // a copy: callers adjust the workload
      "inferbench:kubeconfig": {
        path: kubeconfigPath,
        namespacePrefix: "ib-rehearsal",
        gpusPerNode: 8,
        imagePullPolicy: "Never",
      },
      "inferbench:run": { repeats: 1, warmupRequests: 2 },
    },
  };
}

/** The shipped vke pair's GPU objects against the real API server: strict field validation, dry run. */
async function strictDryRun(
  kubectl: string,
  kubeconfig: string,
  log: (l: string) => void,
): Promise<number> {
  const pinned = `ghcr.io/ovg-project/kvcached-vllm@sha256:${"e".repeat(64)}`;
  const sets = [`engine.images.managed=${pinned}`];
  const plans = ["vke-baseline", "vke-managed"].map((s) => planStack(s, sets).plan);
  const plan = experimentPlan({
    stacks: plans.map((p) => p.stack),
    overrides: sets,
    quick: false,
    plans,
    interleave: true,
  });
  const runId = `dryrun-${randomBytes(2).toString("hex")}`;
  const { config } = planStack("vke-managed", sets).loaded;
  let n = 0;
  for (const arm of ["baseline", "managed"] as const) {
    const opts = renderOptionsOf(config as StackConfig, runId, false, { hfToken: true });
    const out = renderKubeArm(plan.arms[arm]!, {
      ...opts,
      experimentPlan: JSON.stringify(bindPlanForKube(plan, arm, false)),
    });
    const [ns, ...rest] = out.objects;
    const kc = ["--kubeconfig", kubeconfig];
    await run(kubectl, [...kc, "create", "-f", "-"], { stdin: JSON.stringify(ns) });
    try {
      const list = { apiVersion: "v1", kind: "List", items: rest };
      await run(kubectl, [...kc, "create", "--dry-run=server", "--validate=strict", "-f", "-"], {
        stdin: JSON.stringify(list),
      });
      n += out.objects.length;
    } finally {
      await run(kubectl, [
        ...kc,
        "delete",
        "namespace",
        ns!.metadata.name,
        "--wait=true",
        "--timeout=120s",
      ]);
    }
  }
  log(`strict server-side dry run: ${n} objects of the vke pair accepted`);
  return n;
}

/**
 * How far a parallelism-2 point may sit from the single-pod one (request throughput, mean E2E):
 * engine-sim's service times are modelled, so two runs on this machine differ by a few percent
 * (measured 2026-12-02: ≤ 2.5 % on req/s).
 */
const SHARD_TOLERANCE = 0.15;

/**
 * The same experiment with two load-generator pods: every point has the single run's requests,
 * merged from both shards (shard 0 says so in the runner's log), and nothing is left behind.
 */
async function rehearseShards(
  singleDir: string,
  experiment: (onLog: (l: string) => void) => ReturnType<typeof runExperiment>,
  cluster: ReturnType<typeof kubeCluster>,
  log: (l: string) => void,
): Promise<void> {
  const merged: string[] = [];
  const r = await experiment((l) => {
    log(l);
    if (/merged 2 shards/.test(l)) merged.push(l);
  });
  if (r.leftovers.length || (await cluster.labelled(runSelector(r.runId))).length)
    throw new Error(`the distributed run ${r.runId} left objects behind`);
  checkRun(r.dir);
  const lines: string[] = [];
  for (const arm of ["baseline", "managed"])
    for (const label of readdirSync(join(r.dir, arm, "points"))) {
      const read = (d: string) =>
        JSON.parse(readFileSync(join(d, arm, "points", label, "point.json"), "utf8")) as {
          requestCount: number;
          errorCount: number;
          artifactDir: string;
        };
      const two = read(r.dir);
      const one = read(singleDir);
      if (two.requestCount !== one.requestCount || two.errorCount !== 0)
        throw new Error(
          `${arm} ${label}: ${two.requestCount} requests (${two.errorCount} failed) from two shards, ${one.requestCount} from one`,
        );
      const stats = (d: string, p: { artifactDir: string }) => {
        const g = JSON.parse(
          readFileSync(join(d, p.artifactDir, "profile_export_genai_perf.json"), "utf8"),
        ) as Record<string, { avg: number }>;
        return { rps: g.request_throughput!.avg, e2e: g.request_latency!.avg };
      };
      const [a, b] = [stats(r.dir, two), stats(singleDir, one)];
      for (const k of ["rps", "e2e"] as const)
        if (Math.abs(a[k] - b[k]) > SHARD_TOLERANCE * b[k])
          throw new Error(
            `${arm} ${label}: ${k} ${a[k].toFixed(2)} from two shards vs ${b[k].toFixed(2)} from one: more than ${SHARD_TOLERANCE * 100} % apart`,
          );
      lines.push(
        `${arm} ${label} ${a.rps.toFixed(1)} vs ${b.rps.toFixed(1)} req/s, E2E ${a.e2e.toFixed(0)} vs ${b.e2e.toFixed(0)} ms`,
      );
    }
  // Every shard's log came home before its Job went (shard 1's says what it sent).
  for (const arm of ["baseline", "managed"]) {
    const host = join(r.dir, arm, "host");
    const logs = readdirSync(host)
      .filter((f) => /^runner-.*\.log$/.test(f))
      .map((f) => readFileSync(join(host, f), "utf8"))
      .join("\n");
    if (!/shard 1\/2: sent \d+ share\(s\) to shard 0/.test(logs))
      throw new Error(`${arm}: no runner log of shard 1 in ${host}`);
  }
  if (merged.length !== lines.length)
    throw new Error(
      `shard 0 merged ${merged.length} point(s) of ${lines.length}: ${merged.join("; ")}`,
    );
  log(
    `distributed run ${r.runId}: every point merged from 2 shards, within ${SHARD_TOLERANCE * 100} % of one pod: ${lines.join("; ")}`,
  );
}

/** Both arms came home with points, images, pod logs and events; the report exists. */
function checkRun(dir: string): void {
  for (const arm of ["baseline", "managed"]) {
    const points = readdirSync(join(dir, arm, "points"));
    if (points.length !== 2)
      throw new Error(`${arm}: ${points.length} points came home (2 expected)`);
    const images = JSON.parse(readFileSync(join(dir, arm, DEPLOYED_IMAGES_FILE), "utf8")) as {
      service: string;
      id: string;
    }[];
    if (images.length < 3 || images.some((i) => !/sha256:/.test(i.id)))
      throw new Error(`${arm}: images recorded: ${JSON.stringify(images)}`);
    const logs = readFileSync(join(dir, arm, PODS_LOG_FILE), "utf8");
    if (!/router/.test(logs)) throw new Error(`${arm}: pod logs did not come home`);
    if (!existsSync(join(dir, arm, EVENTS_FILE))) throw new Error(`${arm}: no events file`);
  }
  if (!readFileSync(join(dir, "report.md"), "utf8").includes("EMULATED"))
    throw new Error("report.md does not say EMULATED");
}

export interface KubeRehearsalOptions {
  skipInstall: boolean;
  skipFaults: boolean;
  logDir: string;
  signal: AbortSignal;
  log: (l: string) => void;
  timings: StepTiming[];
}

export async function rehearseKube(opts: KubeRehearsalOptions): Promise<void> {
  const { log, timings, signal } = opts;
  const time = async <T>(step: string, f: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    log(`step: ${step}`);
    const v = await f();
    timings.push({ step, seconds: (performance.now() - t) / 1000, status: "ok" });
    return v;
  };
  const t0 = performance.now();
  if (!opts.skipInstall) {
    for (const t of await installRehearsal(
      ["sshd", "engine", "base-image", "pulumi", "pulumi-kubernetes"],
      log,
    ))
      timings.push({ ...t, step: `install ${t.step}` });
    await time("install kubernetes (binaries, pause, CoreDNS)", () => kubeScript(["build"], log));
  }
  const env = await installEnv();
  const tar = join(opts.logDir, "images.tar");
  await time("kit images (built on a rehearsal host's dockerd, saved)", async () => {
    const h = await startVmHost({ baseImage: true, onLog: log, name: `kb${process.pid % 100000}` });
    try {
      await buildKitImage(h, { logFile: join(opts.logDir, "kit-image-build.log"), signal });
      await tagServiceImages(h, KIT_IMAGE_TAG);
      await run(h.dockerCli.bin, ["save", "-o", tar, ...REHEARSAL_IMAGES], {
        env: h.dockerCli.env,
      });
    } finally {
      await h.stop();
    }
  });
  signal.throwIfAborted();
  // From clean state every time: a node restarted on old state keeps pods the kubelet believes
  // running in sandboxes whose network is gone (CoreDNS among them: every lookup times out).
  await time("cluster up (fresh state)", async () => {
    await kubeScript(["purge"], log);
    await kubeScript(["up"], log);
  });
  try {
    const kubeconfig = await kubeScript(["kubeconfig"], log);
    await time("images → the node's containerd", () => kubeScript(["import-image", tar], log));
    const kubectl = join(await kubeScript(["bin"], log), "kubectl");
    await time("shipped vke objects: strict server-side dry run", () =>
      strictDryRun(kubectl, kubeconfig, log),
    );
    const root = join(opts.logDir, "pulumi");
    mkdirSync(root, { recursive: true });
    Object.assign(process.env, {
      PULUMI_HOME: join(root, "home"),
      PULUMI_BACKEND_URL: `file://${join(root, "state")}`,
      PULUMI_CONFIG_PASSPHRASE: randomBytes(16).toString("hex"),
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      PATH: [dirname(env.PULUMI_BIN!), env.PULUMI_K8S_BIN_DIR!, process.env.PATH].join(delimiter),
    });
    mkdirSync(join(root, "state"), { recursive: true });
    const stacksDir = join(opts.logDir, "stacks");
    mkdirSync(stacksDir, { recursive: true });
    writeFileSync(
      join(stacksDir, "Pulumi.rehearsal-kube.yaml"),
      stringify(kubeRehearsalStack(kubeconfig)),
    );
    const cluster = kubeCluster(loadKubeConfig(readFileSync(kubeconfig, "utf8")));
    const experiment = (
      s: AbortSignal,
      onProgress: (l: string) => void,
      overrides: string[] = [],
      onLog: (l: string) => void = log,
    ) =>
      runExperiment({
        stacks: ["rehearsal-kube"],
        overrides,
        quick: false,
        interleave: true,
        runsDir: join(opts.logDir, "runs"),
        log: createLogger("rehearsal", onLog),
        signal: s,
        planArm: (st, o) => {
          const { plan, loaded } = planStack(st, o, { stacksDir });
          return { plan, config: loaded.config };
        },
        target: (_p, configs) => kubeTarget(configs as Record<string, StackConfig>),
        onProgress,
      });
    const r = await time(
      "run through the kubeconfig target (both arms side by side, Pulumi, EMULATED)",
      () => experiment(signal, log),
    );
    if (r.leftovers.length)
      throw new Error(`the run left ${r.leftovers.map((l) => `${l.kind} ${l.name}`).join(", ")}`);
    const labelled = await cluster.labelled(runSelector(r.runId));
    if (labelled.length)
      throw new Error(`objects with the run label remain: ${JSON.stringify(labelled)}`);
    checkRun(r.dir);
    const stacks = await run("pulumi", ["stack", "ls", "--json", "--all"], {
      env: process.env,
    }).catch((e) => `${e}`);
    if (stacks.includes(r.runId))
      throw new Error(`a Pulumi stack of run ${r.runId} is left: ${stacks}`);
    log(`run ${r.runId}: ${r.allValid ? "all points valid" : "SOME INVALID (2 cores)"} → ${r.dir}`);
    await time("distributed load: runner.parallelism=2 (an indexed Job, shard pods merged)", () =>
      rehearseShards(
        r.dir,
        (l) => experiment(signal, log, ["runner.parallelism=2"], l),
        cluster,
        log,
      ),
    );
    if (!opts.skipFaults) {
      await time("Ctrl-C after the first point: nothing with the run label is left", async () => {
        const ac = new AbortController();
        let runId = "";
        const stop = AbortSignal.any([signal, ac.signal]);
        const err = await experiment(stop, (l) => {
          log(l);
          if (/^\[2\//.test(l)) ac.abort(new Error("Ctrl-C (rehearsed)"));
        }).then(
          (x) => {
            runId = x.runId;
            return undefined;
          },
          (e: unknown) => e,
        );
        if (!err)
          throw new Error(`the interrupted run ${runId} completed: the interrupt came too late`);
        const dirs = readdirSync(join(opts.logDir, "runs")).filter((d) => d !== r.runId);
        const id = dirs.sort().at(-1)!;
        const left = await cluster.labelled(runSelector(id));
        if (left.length)
          throw new Error(
            `after Ctrl-C, objects with run label ${id} remain: ${JSON.stringify(left)}`,
          );
        log(`interrupted run ${id}: ${(err as Error).message.split("\n")[0]}; nothing left`);
      });
    }
    const drops = Number(await kubeScript(["egress-drops"], log));
    if (drops !== 0)
      throw new Error(`${drops} packets from pods were dropped on their way off the machine`);
    log("egress: 0 packets from pods towards the uplink");
  } finally {
    const t = performance.now();
    await kubeScript(["down"], log).catch((e) =>
      log(`cluster down failed: ${(e as Error).message}`),
    );
    timings.push({ step: "cluster down", seconds: (performance.now() - t) / 1000, status: "ok" });
    timings.push({ step: "total", seconds: (performance.now() - t0) / 1000, status: "" });
  }
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const flags = ["--skip-install", "--no-faults"];
  const unknown = args.filter((a) => !flags.includes(a));
  if (unknown.length) {
    console.error(`rehearse-kube: unknown argument ${unknown[0]} (known: ${flags.join(" ")})`);
    return 2;
  }
  const avail = await vmHostAvailable({ requireInstall: args.includes("--skip-install") });
  if (!avail.ok) {
    console.error(`rehearse-kube: cannot run here: ${avail.reason}`);
    return 2;
  }
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    console.error(`rehearse-kube: ${sig}: stopping and tearing the cluster down`);
    ac.abort(new Error(`interrupted (${sig})`));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const logDir = await mkdtemp(join(tmpdir(), "inferbench-rehearse-kube-"));
  const timings: StepTiming[] = [];
  try {
    await rehearseKube({
      skipInstall: args.includes("--skip-install"),
      skipFaults: args.includes("--no-faults"),
      logDir,
      signal: ac.signal,
      log: (l) => console.error(`  ${l}`),
      timings,
    });
    console.log("rehearse:kube passed");
    console.log(formatTimings(timings));
    await rm(logDir, { recursive: true, force: true });
    return 0;
  } catch (err) {
    console.error(`rehearse:kube FAILED: ${err instanceof Error ? err.message : String(err)}`);
    if (timings.length) console.error(formatTimings(timings));
    console.error(`  logs kept in ${logDir}`);
    return ac.signal.aborted ? 130 : 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = await main();
}

/**
 * A whole benchmark through the kit's ssh target on the rehearsal host: the same executor,
 * target and runner a user's `inferbench run --stack <ssh stack>` takes, on a real sshd and a real
 * dockerd (engine-sim in place of vLLM, labelled EMULATED). Both arms, two repeats in ABBA blocks
 * (arm swaps on one host), results home, compare + report, and an audit of the host's engine.
 */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import { stringify } from "yaml";
import { DEFAULT_ENGINE_SIM_IMAGE, DEFAULT_KIT_IMAGE } from "../compose/render.ts";
import { runExperiment } from "../experiments/execute.ts";
import { createLogger } from "../lib/logger.ts";
import { type RemoteHost, shQuote } from "../lib/ssh/ssh.ts";
import { DEPLOYED_IMAGES_FILE, HOST_LOG_FILE } from "../results/store.ts";
import type { StackConfig } from "../stacks/schema.ts";
import { planStack } from "../targets/plan-stack.ts";
import { LOCK_DIR, sshTarget } from "../targets/ssh/index.ts";
import type { VmHost } from "./vm-host.ts";

export const ROUTER_IMAGE = "inferbench/router:0.1.0";
/** A pretend price for the rehearsal host, so cost appears in the run (labelled as the stack's own). */
export const REHEARSAL_HOURLY_USD = 1;

/** Runs the host's docker CLI from this machine (its socket is reachable here). */
function docker(h: VmHost, args: string[], stdin?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(h.dockerCli.bin, args, {
      env: { ...h.dockerCli.env, DOCKER_BUILDKIT: "0" },
      stdio: ["pipe", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`docker ${args.join(" ")}: exit ${code}: ${err.slice(-800)}`)),
    );
    child.stdin.end(stdin ?? "");
  });
}

/**
 * The router and engine-sim images as the services' own entry points on top of the kit image
 * (it holds every service's code), so one npm install serves all three.
 */
export async function tagServiceImages(h: VmHost, kitImage: string): Promise<void> {
  await docker(h, ["tag", kitImage, DEFAULT_KIT_IMAGE]);
  for (const [tag, main] of [
    [ROUTER_IMAGE, "services/router/main.ts"],
    [DEFAULT_ENGINE_SIM_IMAGE, "services/engine-sim/main.ts"],
  ] as const) {
    await docker(
      h,
      ["build", "-t", tag, "-"],
      `FROM ${kitImage}\nENTRYPOINT ["node", "--import", "tsx", "${main}"]\nCMD ["--help"]\n`,
    );
  }
}

/** Copies images from one rehearsal host's engine to another's (docker save | docker load). */
export async function copyImages(from: VmHost, to: VmHost, tags: readonly string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const save = spawn(from.dockerCli.bin, ["save", ...tags], {
      env: from.dockerCli.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const load = spawn(to.dockerCli.bin, ["load", "-q"], {
      env: to.dockerCli.env,
      stdio: ["pipe", "ignore", "pipe"],
    });
    save.stdout.pipe(load.stdin);
    let err = "";
    for (const c of [save, load]) c.stderr.on("data", (d) => (err += d));
    let n = 0;
    const done = (code: number | null) => {
      if (code !== 0) reject(new Error(`docker save | load: exit ${code}: ${err.slice(-500)}`));
      else if (++n === 2) resolve();
    };
    save.on("close", done);
    load.on("close", done);
  });
}

/** Every image the rehearsal's compose projects use. */
export const REHEARSAL_IMAGES = [DEFAULT_KIT_IMAGE, ROUTER_IMAGE, DEFAULT_ENGINE_SIM_IMAGE];

/**
 * What every rehearsal run deploys and drives, whatever the target: the local reference layout
 * shrunk to one model with two replicas per arm (engine-sim), and a two-point workload.
 */
export const REHEARSAL_ARM_CONFIG = {
  "inferbench:mode": "managed",
  "inferbench:rehearsal": true,
  "inferbench:models": [
    {
      name: "llama-3.1-8b",
      hfPath: "meta-llama/Llama-3.1-8B-Instruct",
      replicas: 2,
      maxModelLen: 8192,
      profile: "llama-3.1-8b@h100",
    },
  ],
  "inferbench:gpus": { type: "h100-80gb", count: 2 },
  "inferbench:engine": { emulatorStartupDelaySec: 1 },
  "inferbench:workload": {
    dataset: { kind: "synthetic", inputTokensMean: 128, numDatasetEntries: 50 },
    streaming: true,
    outputTokensMean: 32,
    outputTokensStddev: 0,
    ignoreEos: true,
    requestCount: 24,
    loadPoints: [{ concurrency: 2 }, { concurrency: 8 }],
  },
} as const;

/** The rehearsal's stack on the ssh target. */
export function rehearsalStack(h: VmHost, keyFile: string): Record<string, unknown> {
  return {
    config: {
      "inferbench:target": "ssh",
      ...structuredClone(REHEARSAL_ARM_CONFIG), // a copy: callers adjust the workload
      "inferbench:ssh": {
        host: h.host,
        port: h.port,
        user: h.username,
        keyFile,
        hostKey: h.hostPublicKey,
        // The host's filesystem is this machine's: its own work dir, removed with it.
        remoteRoot: h.workDir,
        hourlyUsd: REHEARSAL_HOURLY_USD,
      },
      "inferbench:run": { repeats: 2, warmupRequests: 2 },
    },
  };
}

/**
 * What ran came home for both arms: the image id of every service, the service logs, each point's
 * engine versions, and the report's "What ran" table.
 */
function checkWhatRan(dir: string): void {
  for (const arm of ["baseline", "managed"]) {
    const images = JSON.parse(readFileSync(join(dir, arm, DEPLOYED_IMAGES_FILE), "utf8")) as {
      service: string;
      id: string;
    }[];
    const services = images.map((i) => i.service);
    if (
      !services.includes("router") ||
      services.length < 3 ||
      images.some((i) => !/^sha256:/.test(i.id))
    )
      throw new Error(`${arm}: images recorded: ${JSON.stringify(images)}`);
    const log = readFileSync(join(dir, arm, HOST_LOG_FILE), "utf8");
    if (!/router/.test(log) || log.split("\n").length < 5)
      throw new Error(`${arm}: the service logs did not come home (${log.length} bytes)`);
    const point = JSON.parse(
      readFileSync(join(dir, arm, "points", "concurrency2", "point.json"), "utf8"),
    ) as { engineVersions?: Record<string, string> };
    const versions = Object.values(point.engineVersions ?? {});
    if (versions.length !== 2 || versions.some((v) => v !== "engine-sim"))
      throw new Error(`${arm}: engine versions ${JSON.stringify(point.engineVersions)}`);
  }
  if (!readFileSync(join(dir, "report.md"), "utf8").includes("What ran"))
    throw new Error('report.md has no "What ran" section');
}

export interface SshRunReport {
  runId: string;
  dir: string;
  swaps: number;
  points: number;
  allValid: boolean;
}

export async function rehearseSshRun(
  h: VmHost,
  opts: { workDir: string; signal?: AbortSignal; log: (line: string) => void },
): Promise<SshRunReport> {
  const stacksDir = join(opts.workDir, "stacks");
  mkdirSync(stacksDir, { recursive: true });
  const keyFile = join(opts.workDir, "id_ed25519");
  writeFileSync(keyFile, h.privateKey, { mode: 0o600 });
  writeFileSync(
    join(stacksDir, "Pulumi.rehearsal-ssh.yaml"),
    stringify(rehearsalStack(h, keyFile)),
  );
  const signal = opts.signal ?? new AbortController().signal;
  const r = await runExperiment({
    stacks: ["rehearsal-ssh"],
    overrides: [],
    quick: false,
    interleave: true,
    runsDir: join(opts.workDir, "runs"),
    log: createLogger("rehearsal", opts.log),
    signal,
    planArm: (s, o) => {
      const { plan, loaded } = planStack(s, o, { stacksDir });
      return { plan, config: loaded.config };
    },
    target: (_p, configs) => sshTarget(configs as Record<string, StackConfig>),
    onProgress: opts.log,
  });
  if (r.leftovers.length)
    throw new Error(
      `the run left ${r.leftovers.map((l) => `${l.kind} ${l.name}`).join(", ")} on the host`,
    );
  checkWhatRan(r.dir);
  const plan = JSON.parse(readFileSync(join(r.dir, "plan.json"), "utf8")) as {
    swaps: { count: number };
    steps: unknown[];
  };
  return {
    runId: r.runId,
    dir: r.dir,
    swaps: plan.swaps.count,
    points: plan.steps.length,
    allValid: r.allValid,
  };
}

/** The ssh target's run lock on the host is gone. */
export async function lockReleased(ssh: RemoteHost, h: VmHost): Promise<boolean> {
  const r = await ssh.exec(`test -e ${shQuote(posix.join(h.workDir, LOCK_DIR))}`);
  return r.code !== 0;
}

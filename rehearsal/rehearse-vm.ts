/**
 * `npm run rehearse:vm`: the gcp-vm path's host side on real parts, on this machine. Installs
 * (cached), brings a rehearsal host up (rehearsal/vm-host.sh: netns + real sshd + real dockerd),
 * connects with the kit's SSH client against the pinned host key, checks the engine and compose
 * versions over SSH, brings a small compose project up through the kit's own deploy code (a
 * health check with start_interval, a GPU reservation), reads its health, takes it down, audits
 * that nothing is left, builds the kit image from this repository on the host's engine and runs
 * it, and tears the host down — also on failure and on Ctrl-C. Prints the time of every step.
 *
 * The steps are exported so a longer rehearsal (a benchmark through the kit's ssh target) can
 * reuse them around its own work.
 */
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { stringify } from "yaml";
import { deployBundle, parseComposePs, projectDir, undeployBundle } from "../compose/remote.ts";
import { connectSsh, type RemoteHost, shQuote } from "../lib/ssh/ssh.ts";
import { startEgressProxy } from "./egress-proxy.ts";
import { rehearseFaults } from "./faults.ts";
import { rehearsePulumi } from "./pulumi-deploy.ts";
import {
  copyImages,
  lockReleased,
  REHEARSAL_IMAGES,
  rehearseSshRun,
  tagServiceImages,
} from "./run-ssh.ts";
import {
  type InstallStep,
  installEnv,
  installRehearsal,
  type StepTiming,
  sshTargetOf,
  startVmHost,
  type VmHost,
  vmHostAvailable,
} from "./vm-host.ts";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const KIT_IMAGE_TAG = "inferbench/inferbench:rehearsal";
export const SMOKE_PROJECT = "inferbench-rehearsal-smoke";
/** The only targets the build's egress proxy tunnels to (npm ci of the kit image). */
export const DEFAULT_EGRESS = ["registry.npmjs.org:443"];

async function must(ssh: RemoteHost, cmd: string, signal?: AbortSignal): Promise<string> {
  const r = await ssh.exec(cmd, signal ? { signal } : {});
  if (r.code !== 0) {
    throw new Error(
      `over SSH, exit ${r.code ?? r.signal}: ${cmd}\n${r.stderr.trim().slice(-1500)}`,
    );
  }
  return r.stdout.trim();
}

/** Engine and compose versions as the login user sees them; refuses other versions. */
export async function checkEngine(
  ssh: RemoteHost,
  want: { docker: string; compose: string },
  signal?: AbortSignal,
): Promise<{ uid: number; server: string; api: string; compose: string }> {
  const uid = Number(await must(ssh, "id -u", signal));
  if (!(uid > 0)) throw new Error(`the SSH login is uid ${uid}, expected an unprivileged user`);
  const [server = "", api = ""] = (
    await must(ssh, "docker version --format '{{.Server.Version}} {{.Server.APIVersion}}'", signal)
  ).split(" ");
  const compose = await must(ssh, "docker compose version --short", signal);
  if (!server.startsWith(want.docker)) throw new Error(`engine ${server}, expected ${want.docker}`);
  if (!compose.replace(/^v/, "").startsWith(want.compose)) {
    throw new Error(`compose ${compose}, expected ${want.compose}`);
  }
  return { uid, server, api, compose };
}

/** Runs a local command to completion, output to `logFile`; aborts kill it. */
function runLogged(
  bin: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; logFile: string; signal?: AbortSignal },
): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const log = createWriteStream(opts.logFile);
    const child = spawn(bin, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    const onAbort = () => child.kill("SIGTERM");
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", reject);
    child.on("close", (code, sig) => {
      opts.signal?.removeEventListener("abort", onAbort);
      log.end(() => {
        if (opts.signal?.aborted) reject(opts.signal.reason ?? new Error("aborted"));
        else if (code === 0) resolvePromise();
        else reject(new Error(`${bin} ${args[0]} exited ${code ?? sig} (log: ${opts.logFile})`));
      });
    });
  });
}

/**
 * Builds compose/kit.Dockerfile from the repository on the host's engine, unchanged. The engine
 * sits in a namespace with no route out, so `npm ci` in the build reaches the registry through a
 * CONNECT proxy on the veth (only the `egress` targets); the legacy builder with --network host
 * puts the build's RUN steps in the host's namespace, where the proxy address is reachable.
 */
export async function buildKitImage(
  h: VmHost,
  opts: {
    repoDir?: string;
    /** Relative to repoDir; default compose/kit.Dockerfile (the services' Dockerfiles work too). */
    dockerfile?: string;
    tag?: string;
    logFile: string;
    egress?: string[];
    signal?: AbortSignal;
  },
): Promise<{ tunnels: number; refused: string[] }> {
  const proxy = await startEgressProxy({
    listenHost: h.gateway,
    allow: opts.egress ?? DEFAULT_EGRESS,
  });
  try {
    const args = ["build", "--network", "host"];
    for (const k of ["HTTPS_PROXY", "https_proxy"]) args.push("--build-arg", `${k}=${proxy.url}`);
    args.push(
      "-f",
      opts.dockerfile ?? "compose/kit.Dockerfile",
      "-t",
      opts.tag ?? KIT_IMAGE_TAG,
      ".",
    );
    await runLogged(h.dockerCli.bin, args, {
      cwd: opts.repoDir ?? REPO,
      env: { ...h.dockerCli.env, DOCKER_BUILDKIT: "0" },
      logFile: opts.logFile,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return { tunnels: proxy.tunnels.length, refused: [...proxy.refused] };
  } finally {
    await proxy.close();
  }
}

/**
 * The smoke project: one service whose health check has start_interval 1s inside a 60 s
 * interval (healthy within seconds only on an engine that honours it), a GPU reservation (accepted
 * through the stand-in NVIDIA hook), a port published on the host's loopback, a project network.
 */
export function smokeCompose(image = "node:20-bookworm-slim"): string {
  const probe =
    "require('http').get('http://127.0.0.1:8080',r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))";
  return stringify({
    services: {
      web: {
        image,
        pull_policy: "never",
        // docker-init (bookworm's tini) as PID 1 forwards SIGTERM, so `down` need not wait 10 s.
        init: true,
        command: ["node", "-e", "require('http').createServer((q,s)=>s.end('ok')).listen(8080)"],
        env_file: ["hf.env"],
        ports: ["127.0.0.1:18080:8080"],
        networks: ["smoke"],
        healthcheck: {
          test: ["CMD", "node", "-e", probe],
          interval: "60s",
          timeout: "5s",
          retries: 3,
          start_period: "60s",
          start_interval: "1s",
        },
        deploy: {
          resources: {
            reservations: {
              devices: [{ driver: "nvidia", device_ids: ["0"], capabilities: ["gpu"] }],
            },
          },
        },
      },
    },
    networks: { smoke: {} },
  });
}

/** What is left on the engine: containers, networks other than the defaults, volumes. */
export async function engineLeftovers(ssh: RemoteHost, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  const containers = await must(ssh, "docker ps -aq", signal);
  if (containers) out.push(`containers: ${containers.split("\n").join(" ")}`);
  const nets = (await must(ssh, "docker network ls --format '{{.Name}}'", signal))
    .split("\n")
    .filter((n) => n && !["bridge", "host", "none"].includes(n));
  if (nets.length) out.push(`networks: ${nets.join(" ")}`);
  const vols = await must(ssh, "docker volume ls -q", signal);
  if (vols) out.push(`volumes: ${vols.split("\n").join(" ")}`);
  return out;
}

/** What a rehearsal host still holds: the engine's leftovers and the ssh target's run lock. */
async function hostLeftovers(x: VmHost): Promise<string[]> {
  const ssh = await connectSsh(sshTargetOf(x));
  try {
    const left = await engineLeftovers(ssh);
    if (!(await lockReleased(ssh, x))) left.push("the run lock");
    return left;
  } finally {
    ssh.close();
  }
}

/** Up (the kit's deployBundle), health from `compose ps`, a request, down, audit. */
export async function composeSmoke(
  ssh: RemoteHost,
  h: VmHost,
  signal?: AbortSignal,
): Promise<{ upSeconds: number; downSeconds: number }> {
  const t0 = performance.now();
  await deployBundle(ssh, {
    remoteRoot: h.workDir,
    projectName: SMOKE_PROJECT,
    files: { "compose.yaml": smokeCompose() },
    waitTimeoutSec: 45,
    ...(signal ? { signal } : {}),
  });
  const upSeconds = (performance.now() - t0) / 1000;
  // `up --wait` has exited 0 for never-healthy services on compose 2.26: read the state.
  const dir = projectDir(h.workDir, SMOKE_PROJECT);
  const ps = parseComposePs(
    await must(
      ssh,
      `cd ${shQuote(dir)} && docker compose -p ${SMOKE_PROJECT} ps --format json`,
      signal,
    ),
  );
  const web = ps.find((p) => p.Service === "web");
  if (web?.Health !== "healthy") {
    throw new Error(`smoke service not healthy after up --wait: ${JSON.stringify(ps)}`);
  }
  // Without start_interval the first probe would come after the 60 s interval.
  if (upSeconds >= 40)
    throw new Error(`healthy only after ${upSeconds.toFixed(1)} s: start_interval ignored?`);
  const body = await must(
    ssh,
    `node -e "fetch('http://127.0.0.1:18080/').then(r=>r.text()).then(t=>console.log(t))"`,
    signal,
  );
  if (body !== "ok")
    throw new Error(`published port answered ${JSON.stringify(body)}, expected "ok"`);
  const t1 = performance.now();
  await undeployBundle(ssh, SMOKE_PROJECT);
  const downSeconds = (performance.now() - t1) / 1000;
  const left = await engineLeftovers(ssh, signal);
  if (left.length) throw new Error(`compose down left: ${left.join("; ")}`);
  return { upSeconds, downSeconds };
}

export interface RehearsalReport {
  timings: StepTiming[];
  engine: { server: string; api: string; compose: string };
}

/** The whole rehearsal; the host is torn down whatever happens. */
export async function rehearseVm(opts: {
  name?: string;
  logDir: string;
  skipInstall?: boolean;
  /** Skip the fault rehearsals (host death, Ctrl-C, network drop, a second run). */
  skipFaults?: boolean;
  /** Skip the benchmark through the ssh target (and so the faults, which need its images only). */
  skipBenchmark?: boolean;
  /** Skip the Pulumi engine's operations on the host. */
  skipPulumi?: boolean;
  installSteps?: InstallStep[];
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Filled as the steps finish (also when one fails). */
  timings?: StepTiming[];
}): Promise<RehearsalReport> {
  const log = opts.log ?? (() => {});
  const timings = opts.timings ?? [];
  const time = async <T>(step: string, fn: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    const done = (status: string) => {
      timings.push({ step, seconds: (performance.now() - t) / 1000, status });
      log(`${step}: ${((performance.now() - t) / 1000).toFixed(1)} s ${status}`);
    };
    try {
      const v = await fn();
      done("ok");
      return v;
    } catch (err) {
      done("FAILED");
      throw err;
    }
  };
  const t0 = performance.now();
  if (!opts.skipInstall) {
    for (const t of await installRehearsal(opts.installSteps, log)) {
      timings.push({ ...t, step: `install ${t.step}` });
    }
  }
  const env = await installEnv();
  const signal = opts.signal;
  if (opts.name)
    log(`host ${opts.name} (if this process is killed: rehearsal/vm-host.sh down ${opts.name})`);
  if (signal?.aborted) throw signal.reason;
  const h = await startVmHost({
    baseImage: true,
    onLog: log,
    ...(opts.name ? { name: opts.name } : {}),
  });
  timings.push({ step: "host up (+ base image)", seconds: h.upSeconds, status: "ok" });
  let ssh: RemoteHost | undefined;
  try {
    ssh = await time("ssh connect (pinned host key)", () => connectSsh(sshTargetOf(h)));
    const conn = ssh;
    const engine = await time("engine + compose versions over ssh", () =>
      checkEngine(conn, { docker: env.DOCKER_VERSION!, compose: env.COMPOSE_VERSION! }, signal),
    );
    const smoke = await time("compose smoke project (kit deploy code)", () =>
      composeSmoke(conn, h, signal),
    );
    timings.push({ step: "  up --wait → healthy", seconds: smoke.upSeconds, status: "ok" });
    timings.push({ step: "  down (kit undeploy)", seconds: smoke.downSeconds, status: "ok" });
    const logFile = join(opts.logDir, "kit-image-build.log");
    const built = await time("kit image build", () =>
      buildKitImage(h, { logFile, ...(signal ? { signal } : {}) }),
    );
    log(`build egress: ${built.tunnels} tunnels, refused: ${built.refused.join(" ") || "none"}`);
    await time("kit image runs (--help)", () =>
      must(conn, `docker run --rm --network none ${KIT_IMAGE_TAG} --help >/dev/null`, signal),
    );
    await time("router + engine-sim images (kit image, own entry points)", () =>
      tagServiceImages(h, KIT_IMAGE_TAG),
    );
    if (!opts.skipBenchmark) {
      const run = await time("benchmark through the ssh target (both arms, ABBA, EMULATED)", () =>
        rehearseSshRun(h, { workDir: opts.logDir, ...(signal ? { signal } : {}), log }),
      );
      log(
        `run ${run.runId}: ${run.points} points, ${run.swaps} arm swaps, ${run.allValid ? "all valid" : "SOME INVALID"} → ${run.dir}`,
      );
      const left = await hostLeftovers(h);
      if (left.length) throw new Error(`the benchmark left on the host: ${left.join("; ")}`);
    }
    if (!opts.skipPulumi) {
      const p = await time("pulumi engine: inline program, ComposeDeployment on the host", () =>
        rehearsePulumi(h, { workDir: opts.logDir, pulumiBin: env.PULUMI_BIN!, log }),
      );
      for (const t of p.timings) timings.push({ ...t, step: `  ${t.step}` });
    }
    if (!opts.skipFaults && !opts.skipBenchmark) {
      const victim = await time("second host up (to be killed)", () =>
        startVmHost({ onLog: log, name: `${h.name}v`.slice(0, 12) }),
      );
      try {
        await time("images → second host", () => copyImages(h, victim, REHEARSAL_IMAGES));
        const faults = await time("fault rehearsals", () =>
          rehearseFaults({ host: h, victim, workDir: opts.logDir, log, leftovers: hostLeftovers }),
        );
        for (const f of faults)
          timings.push({ step: `  ${f.fault}`, seconds: f.seconds, status: "ok" });
      } finally {
        const down = await victim.stop();
        timings.push({ step: "second host down", seconds: down, status: "ok" });
      }
    }
    return { timings, engine: { server: engine.server, api: engine.api, compose: engine.compose } };
  } finally {
    ssh?.close();
    const down = await h.stop();
    timings.push({ step: "host down", seconds: down, status: "ok" });
    timings.push({ step: "total", seconds: (performance.now() - t0) / 1000, status: "" });
  }
}

export function formatTimings(timings: StepTiming[]): string {
  const w = Math.max(...timings.map((t) => t.step.length));
  return timings
    .map((t) => `  ${t.step.padEnd(w)}  ${t.seconds.toFixed(1).padStart(7)} s  ${t.status}`)
    .join("\n");
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const skipInstall = args.includes("--skip-install");
  const flags = ["--skip-install", "--no-faults", "--no-benchmark", "--no-pulumi"];
  const unknown = args.filter((a) => !flags.includes(a));
  if (unknown.length) {
    console.error(`rehearse-vm: unknown argument ${unknown[0]} (known: ${flags.join(" ")})`);
    return 2;
  }
  const skipFaults = args.includes("--no-faults");
  const skipBenchmark = args.includes("--no-benchmark");
  const skipPulumi = args.includes("--no-pulumi");
  const avail = await vmHostAvailable({ requireInstall: skipInstall });
  if (!avail.ok) {
    console.error(`rehearse-vm: cannot run here: ${avail.reason}`);
    return 2;
  }
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    console.error(`rehearse-vm: ${sig}: stopping and tearing the host down`);
    ac.abort(new Error(`interrupted (${sig})`));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const logDir = await mkdtemp(join(tmpdir(), "inferbench-rehearse-vm-"));
  const log = (l: string) => console.error(`  ${l}`);
  const name = `vm${process.pid % 100000}`;
  const timings: StepTiming[] = [];
  try {
    const report = await rehearseVm({
      name,
      logDir,
      skipInstall,
      skipFaults,
      skipBenchmark,
      skipPulumi,
      signal: ac.signal,
      log,
      timings,
    });
    console.log(
      `rehearse:vm passed: engine ${report.engine.server} (API ${report.engine.api}), compose ${report.engine.compose}`,
    );
    console.log(formatTimings(timings));
    await rm(logDir, { recursive: true, force: true });
    return 0;
  } catch (err) {
    console.error(`rehearse:vm FAILED: ${err instanceof Error ? err.message : String(err)}`);
    if (timings.length) console.error(formatTimings(timings));
    console.error(`  logs kept in ${logDir}`);
    return ac.signal.aborted ? 130 : 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = await main();
}

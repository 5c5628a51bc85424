/**
 * Finds the peer tools installed by peers/install.sh (never installs anything: npm test stays
 * hermetic) and starts the shared backend for the peer tests. The tests run under
 * `npm run test:peers` (INFERBENCH_PEERS=1); when the peers are missing they skip with the
 * reason, unless INFERBENCH_PEERS_REQUIRED=1 (CI), where they fail.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface Peers {
  dir: string;
  python: string;
  genaiPerf: string;
  aiperf: string;
  perfAnalyzer: string;
  tokenizer: string;
  versions: Record<string, string>;
}

/** The installed peers, or why they are not there (the message says how to install them). */
export function findPeers(): Peers | { missing: string } {
  let dir: string;
  try {
    const env = execFileSync("bash", [join(ROOT, "peers/install.sh"), "env"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    dir = /^PEERS_DIR=(.*)$/m.exec(env)?.[1] ?? "";
  } catch (err) {
    return { missing: `peers/install.sh env failed: ${(err as Error).message}` };
  }
  const ready = join(dir, "READY");
  if (!existsSync(ready))
    return {
      missing: `peer tools not installed (${dir}/READY missing): run peers/install.sh (≈ 3 min, 1.4 GB)`,
    };
  const versions: Record<string, string> = {};
  for (const line of readFileSync(ready, "utf8").split("\n")) {
    const [k, v] = line.split("=");
    if (k && v) versions[k] = v;
  }
  return {
    dir,
    python: join(dir, "bin/python"),
    genaiPerf: join(dir, "bin/genai-perf"),
    aiperf: join(dir, "bin/aiperf"),
    perfAnalyzer: join(dir, "bin/perf_analyzer"),
    tokenizer: join(dir, "tokenizer/llama-3"),
    versions,
  };
}

/**
 * `skip` option for describe(): false when the peers are there, else the reason. With
 * INFERBENCH_PEERS_REQUIRED=1 a missing install throws, so the test file fails instead.
 */
export function peersOrSkip(): { peers?: Peers; skip: string | false } {
  const required = process.env["INFERBENCH_PEERS_REQUIRED"] === "1";
  // npm test stays fast and hermetic: the peer tests run under `npm run test:peers` only.
  if (!required && process.env["INFERBENCH_PEERS"] !== "1")
    return { skip: "peer tests run under `npm run test:peers` (INFERBENCH_PEERS=1)" };
  const p = findPeers();
  if (!("missing" in p)) return { peers: p, skip: false };
  if (required) throw new Error(`INFERBENCH_PEERS_REQUIRED=1 but ${p.missing}`);
  return { skip: p.missing };
}

export interface Backend {
  url: string;
  close(): Promise<void>;
}

/**
 * engine-sim (llama-3.1-8b@h100, EMULATED) in its own process on a free loopback port: the peers
 * and inferbench then drive the same server without sharing its event loop.
 */
export async function startEngineSim(seed = 0): Promise<Backend> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      join(ROOT, "bin/inferbench.js"),
      "serve",
      "engine-sim",
      "--profile",
      "llama-3.1-8b@h100",
      "--port",
      "0",
      "--seed",
      String(seed),
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let err = "";
    const timer = setTimeout(() => reject(new Error(`engine-sim did not start: ${err}`)), 30_000);
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /ready to accept connections: [^=]+=(127\.0\.0\.1:\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`engine-sim exited ${code}: ${err}`));
    });
  });
  child.stderr!.resume();
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/**
 * Runs a peer command in its own process group; its output is returned, a failure throws with the
 * output's tail. A peer that outlives its bound is killed with everything it started (genai-perf's
 * perf_analyzer holds the pipes open after genai-perf itself dies, which would hang the test), and
 * nothing of the group is left when it ends either way.
 */
export function runPeer(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const killGroup = () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // the group is gone
      }
    };
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, opts.timeoutMs ?? 180_000);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // Done at 'close', or 2 s after 'exit' at the latest: a grandchild holding the pipes open must
    // not keep the test waiting.
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let done = false;
    const finish = () => {
      if (done || !exited) return;
      done = true;
      clearTimeout(timer);
      killGroup();
      child.stdout.destroy();
      child.stderr.destroy();
      const { code, signal } = exited;
      if (code === 0 && !timedOut) resolve({ stdout, stderr });
      else
        reject(
          new Error(
            `${cmd} ${args.join(" ")} → ${timedOut ? `killed after ${opts.timeoutMs ?? 180_000} ms` : (signal ?? `exit ${code}`)}\n${(stderr || stdout).slice(-3000)}`,
          ),
        );
    };
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      setTimeout(finish, 2000).unref();
    });
    child.once("close", finish);
  });
}

/**
 * A peer run that a third-party hang may spoil (perf_analyzer has stalled here at a request rate
 * with the engine idle): tried again once, bounded each time, and the first failure is logged.
 */
export async function runPeerRetried(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; timeoutMs: number; before?: () => void },
): Promise<{ stdout: string; stderr: string }> {
  try {
    return await runPeer(cmd, args, opts);
  } catch (err) {
    console.error(`# peer run failed, trying once more: ${(err as Error).message.split("\n")[0]}`);
    opts.before?.();
    return runPeer(cmd, args, opts);
  }
}

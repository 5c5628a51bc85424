/**
 * The rehearsal VM host as an API: runs rehearsal/install.sh and rehearsal/vm-host.sh and hands
 * back what the kit's SSH target needs (address, user, login key, pinned host key) plus the host's
 * docker socket. Both keys are generated here with the kit's own encoder (lib/ssh/keys.ts), the
 * way the gcp-vm target generates them at provision time, so real sshd reads the kit's format.
 */
import { type SpawnOptions, spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateEd25519, publicKeyBlob } from "../lib/ssh/keys.ts";
import type { SshTarget } from "../lib/ssh/ssh.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
export const INSTALL_SCRIPT = join(HERE, "install.sh");
export const VM_HOST_SCRIPT = join(HERE, "vm-host.sh");

export type InstallStep = "sshd" | "engine" | "base-image" | "pulumi" | "pulumi-kubernetes";
/** What a host needs to come up (the base image and Pulumi are for the rehearsal on top). */
export const HOST_STEPS: InstallStep[] = ["sshd", "engine"];

export type Availability = { ok: true } | { ok: false; reason: string };

export interface ScriptResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one of the harness scripts; stderr (progress) is streamed to `onLog` line by line. */
export function runScript(
  script: string,
  args: string[],
  opts: { onLog?: (line: string) => void; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = {
      stdio: ["ignore", "pipe", "pipe"],
      env: opts.env ?? process.env,
    };
    const child = spawn("bash", [script, ...args], spawnOpts);
    let stdout = "";
    let stderr = "";
    let pending = "";
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => child.kill("SIGTERM"), opts.timeoutMs);
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr!.on("data", (d: Buffer) => {
      const s = d.toString();
      stderr += s;
      pending += s;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const l of lines) opts.onLog?.(l);
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (timer) clearTimeout(timer);
      if (pending) opts.onLog?.(pending);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `KEY=VALUE` lines (other lines ignored). */
export function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export interface StepTiming {
  step: string;
  seconds: number;
  status: string;
}

/** `TIMING <step> <seconds> <status>` lines the scripts print. */
export function parseTimings(text: string): StepTiming[] {
  const out: StepTiming[] = [];
  for (const line of text.split("\n")) {
    const m = /^TIMING (\S+) (\d+(?:\.\d+)?) (\S+)$/.exec(line);
    if (m) out.push({ step: m[1]!, seconds: Number(m[2]), status: m[3]! });
  }
  return out;
}

function failure(what: string, r: ScriptResult): Error {
  const tail = r.stderr.trim().split("\n").slice(-15).join("\n");
  return new Error(`${what} failed (exit ${r.code}):\n${tail}`);
}

export async function installEnv(): Promise<Record<string, string>> {
  const r = await runScript(INSTALL_SCRIPT, ["env"]);
  if (r.code !== 0) throw failure("rehearsal/install.sh env", r);
  return parseKeyValues(r.stdout);
}

/** Null when every step is cached, else the script's one-line reason. Installs nothing. */
export async function missingInstall(steps: InstallStep[] = HOST_STEPS): Promise<string | null> {
  const r = await runScript(INSTALL_SCRIPT, ["--check", ...steps]);
  if (r.code === 0) return null;
  return r.stdout.trim() || r.stderr.trim() || `install.sh --check exited ${r.code}`;
}

/** Installs (or finds cached) the given steps; returns each step's time. */
export async function installRehearsal(
  steps: InstallStep[] = ["sshd", "engine", "base-image", "pulumi"],
  onLog?: (line: string) => void,
): Promise<StepTiming[]> {
  const r = await runScript(INSTALL_SCRIPT, steps, onLog ? { onLog } : {});
  if (r.code !== 0) throw failure("rehearsal/install.sh", r);
  return parseTimings(r.stdout);
}

async function onPath(bin: string): Promise<boolean> {
  for (const d of (process.env.PATH ?? "").split(delimiter)) {
    if (!d) continue;
    try {
      await access(join(d, bin), constants.X_OK);
      return true;
    } catch {}
  }
  return false;
}

/**
 * Whether a rehearsal host can come up here, and if not why (for test skips and a clear exit):
 * Linux, root, the tools, a network namespace the kernel actually grants, and (unless
 * `requireInstall` is false) the cached install.
 */
export async function vmHostAvailable(
  opts: { requireInstall?: boolean; steps?: InstallStep[] } = {},
): Promise<Availability> {
  if (process.platform !== "linux")
    return { ok: false, reason: `needs Linux (this is ${process.platform})` };
  const uid = process.getuid?.();
  if (uid !== 0) {
    return {
      ok: false,
      reason: `needs root for network namespaces, sshd and dockerd (uid ${uid})`,
    };
  }
  for (const bin of ["ip", "nsenter", "unshare", "ssh-keygen", "flock", "bash"]) {
    if (!(await onPath(bin))) return { ok: false, reason: `${bin} is not on PATH` };
  }
  const probe = await new Promise<number | null>((resolve) => {
    const c = spawn("unshare", ["--net", "true"], { stdio: "ignore" });
    c.on("error", () => resolve(-1));
    c.on("close", resolve);
  });
  if (probe !== 0)
    return { ok: false, reason: "the kernel refuses a new network namespace (unshare --net)" };
  if (opts.requireInstall !== false) {
    const missing = await missingInstall(opts.steps ?? HOST_STEPS);
    if (missing) return { ok: false, reason: missing };
  }
  return { ok: true };
}

export interface VmHostOptions {
  /** 1–12 characters [a-z0-9-], starting with a letter; default `rh<pid>`. */
  name?: string;
  /** Import the cached base image as node:20-bookworm-slim (install step base-image). */
  baseImage?: boolean;
  onLog?: (line: string) => void;
}

export interface VmHost
  extends Required<Pick<SshTarget, "host" | "port" | "username" | "privateKey" | "hostPublicKey">> {
  name: string;
  /** `unix://…/docker.sock` of the host's engine (reachable from this machine too). */
  dockerHost: string;
  /** A directory owned by the login user, removed with the host (use as remoteRoot). */
  workDir: string;
  /** This machine's address on the veth pair: the only address the host can reach. */
  gateway: string;
  stateDir: string;
  /** Where the host's docker CLI and compose plugin live, for machine-side calls. */
  dockerCli: { bin: string; env: NodeJS.ProcessEnv };
  upSeconds: number;
  /** Tears the host down (idempotent); resolves with the seconds it took. */
  stop(): Promise<number>;
}

const live = new Map<string, () => Promise<number>>();

/** Stops every host this process started and has not stopped yet (signal handlers, test hooks). */
export async function stopAllVmHosts(): Promise<void> {
  await Promise.allSettled([...live.values()].map((stop) => stop()));
}

function downOnce(name: string, onLog?: (line: string) => void): () => Promise<number> {
  let p: Promise<number> | undefined;
  const stop = () => {
    p ??= (async () => {
      const r = await runScript(VM_HOST_SCRIPT, ["down", name], onLog ? { onLog } : {});
      live.delete(name);
      if (r.code !== 0) throw failure(`vm-host.sh down ${name}`, r);
      return parseTimings(r.stdout).find((t) => t.step === "host-down")?.seconds ?? Number.NaN;
    })();
    return p;
  };
  return stop;
}

export async function startVmHost(opts: VmHostOptions = {}): Promise<VmHost> {
  const name = opts.name ?? `rh${process.pid}`;
  const hostKey = generateEd25519(`rehearsal-host-${name}`);
  const loginKey = generateEd25519(`rehearsal-login-${name}`);
  const keyDir = await mkdtemp(join(tmpdir(), "inferbench-vm-keys-"));
  const stop = downOnce(name, opts.onLog);
  // Registered before `up` runs, so a signal during `up` still tears down what it built.
  live.set(name, stop);
  let r: ScriptResult;
  try {
    await writeFile(join(keyDir, "host_key"), hostKey.privateKey, { mode: 0o600 });
    await writeFile(join(keyDir, "login.pub"), `${loginKey.publicKey}\n`, { mode: 0o644 });
    const args = ["up", name, "--host-key", join(keyDir, "host_key")];
    args.push("--authorized-key", join(keyDir, "login.pub"));
    if (opts.baseImage) args.push("--base-image");
    r = await runScript(VM_HOST_SCRIPT, args, opts.onLog ? { onLog: opts.onLog } : {});
  } finally {
    await rm(keyDir, { recursive: true, force: true });
  }
  if (r.code !== 0) {
    live.delete(name);
    throw failure(`vm-host.sh up ${name}`, r);
  }
  const kv = parseKeyValues(r.stdout);
  try {
    const presented = await readFile(kv.HOST_PUBLIC_KEY_FILE!, "utf8");
    if (!publicKeyBlob(presented).equals(publicKeyBlob(hostKey.publicKey))) {
      throw new Error(`sshd of ${name} holds a host key other than the one generated for it`);
    }
    const env = await installEnv();
    const engineRoot = env.ENGINE_ROOT!;
    return {
      name,
      host: kv.HOST!,
      port: Number(kv.PORT),
      username: kv.USERNAME!,
      privateKey: loginKey.privateKey,
      hostPublicKey: hostKey.publicKey,
      dockerHost: kv.DOCKER_HOST!,
      workDir: kv.WORK_DIR!,
      gateway: kv.GATEWAY!,
      stateDir: kv.STATE_DIR!,
      dockerCli: {
        bin: join(engineRoot, "usr/bin/docker"),
        env: {
          ...process.env,
          DOCKER_HOST: kv.DOCKER_HOST!,
          DOCKER_CONFIG: join(kv.STATE_DIR!, "docker-config"),
        },
      },
      upSeconds: parseTimings(r.stdout).find((t) => t.step === "host-up")?.seconds ?? Number.NaN,
      stop,
    };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

/** The SSH target of a host, for connectSsh. */
export function sshTargetOf(h: VmHost): SshTarget {
  return {
    host: h.host,
    port: h.port,
    username: h.username,
    privateKey: h.privateKey,
    hostPublicKey: h.hostPublicKey,
  };
}

/** Runs `fn` with a host and always tears it down, also when `fn` throws. */
export async function withVmHost<T>(
  opts: VmHostOptions,
  fn: (h: VmHost) => Promise<T>,
): Promise<T> {
  const h = await startVmHost(opts);
  try {
    return await fn(h);
  } finally {
    await h.stop();
  }
}

/**
 * Compose deployment and benchmark execution on a provisioned host, over a RemoteHost (SSH).
 * Shared by the Pulumi deploy resource and the CLI orchestration (which swaps arms on one VM).
 * Command lines are built by pure functions so tests can check exactly what runs remotely.
 */
import { posix } from "node:path";
import { FAILED_MARKER, READY_MARKER } from "../infra/startup-script.ts";
import { HostKeyMismatchError, type RemoteHost, shQuote } from "../lib/ssh/ssh.ts";
import { bundleHash } from "./bundle.ts";
import { HF_ENV_FILE } from "./render.ts";

export const BUNDLE_HASH_FILE = ".bundle-sha256";

export interface DeployRequest {
  /** e.g. /opt/inferbench */
  remoteRoot: string;
  projectName: string;
  files: Record<string, string>;
  /** Written to hf.env with mode 0600; empty file when absent. */
  hfToken?: string;
  waitTimeoutSec: number;
  signal?: AbortSignal;
  onOutput?: (chunk: string) => void;
}

export function projectDir(remoteRoot: string, projectName: string): string {
  return posix.join(remoteRoot, projectName);
}

/** hf.env content: both names vLLM / huggingface_hub read. Never logged. */
export function hfEnvFile(token: string | undefined): string {
  if (!token) return "";
  if (/[\r\n]/.test(token)) throw new Error("HF token contains a line break");
  return `HF_TOKEN=${token}\nHUGGING_FACE_HUB_TOKEN=${token}\n`;
}

/** The pid file of a running `compose up` (the shell execs compose, keeping its pid). */
export const UP_PID_FILE = ".inferbench-up.pid";

export function composeUpCommand(dir: string, project: string, waitTimeoutSec: number): string {
  return `cd ${shQuote(dir)} && echo $$ > ${UP_PID_FILE} && exec docker compose -p ${shQuote(project)} up -d --wait --wait-timeout ${Math.ceil(waitTimeoutSec)} --remove-orphans`;
}

/**
 * Stops an interrupted `compose up` on the host: closing the SSH channel does not, and an up that
 * goes on creating containers would outlive the `down` that follows.
 */
export function stopUpCommand(dir: string): string {
  const pid = `${shQuote(dir)}/${UP_PID_FILE}`;
  return `p=$(cat ${pid} 2>/dev/null) && kill -TERM "$p" 2>/dev/null; for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done; rm -f ${pid}`;
}

/** Down with the runner's profile active, so its (one-off) containers go too. */
export function composeDownCommand(project: string): string {
  return `docker compose -p ${shQuote(project)} --profile runner down --remove-orphans`;
}

export const COMPOSE_LS_COMMAND = "docker compose ls -a --format json";

export function composeLogsCommand(dir: string, project: string, tail: number): string {
  return `cd ${shQuote(dir)} && docker compose -p ${shQuote(project)} logs --no-color --tail ${tail}`;
}

export function composePsCommand(dir: string, project: string): string {
  return `cd ${shQuote(dir)} && docker compose -p ${shQuote(project)} ps -a --format json`;
}

export interface ComposePsEntry {
  Service: string;
  State: string;
  Health: string;
}

/** `docker compose ps --format json`: a JSON array (older compose) or one object per line. */
export function parseComposePs(text: string): ComposePsEntry[] {
  const t = text.trim();
  if (!t) return [];
  const items: unknown[] = t.startsWith("[")
    ? JSON.parse(t)
    : t.split("\n").map((l) => JSON.parse(l));
  return items.map((i) => {
    const o = i as Record<string, unknown>;
    return {
      Service: String(o.Service ?? ""),
      State: String(o.State ?? ""),
      Health: String(o.Health ?? ""),
    };
  });
}

/**
 * Services that are not up and healthy (those with a health check) after `up --wait`. Compose
 * 2.26/2.40 have exited 0 from `up --wait` for a never-healthy service, so the state is read back.
 */
export function unhealthyServices(ps: readonly ComposePsEntry[]): string[] {
  return ps
    .filter((p) => p.State !== "running" || (p.Health !== "" && p.Health !== "healthy"))
    .map((p) => `${p.Service} (${p.State}${p.Health ? `, ${p.Health}` : ""})`);
}

/** Other inferbench projects on the host (from `docker compose ls --format json`) to stop. */
export function projectsToStop(lsJson: string, keep: string): string[] {
  let list: unknown;
  try {
    list = JSON.parse(lsJson.trim() || "[]");
  } catch {
    return [];
  }
  if (!Array.isArray(list)) return [];
  return list
    .map((p) => (p && typeof p === "object" ? (p as { Name?: unknown }).Name : undefined))
    .filter((n): n is string => typeof n === "string" && n.startsWith("inferbench") && n !== keep)
    .sort();
}

async function must(
  host: RemoteHost,
  cmd: string,
  req: { signal?: AbortSignal; onOutput?: (s: string) => void },
) {
  const r = await host.exec(cmd, {
    ...(req.signal ? { signal: req.signal } : {}),
    ...(req.onOutput ? { onStdout: req.onOutput, onStderr: req.onOutput } : {}),
  });
  if (r.code !== 0) {
    throw new Error(
      `remote command failed (exit ${r.code ?? r.signal}): ${cmd}\n${r.stderr.slice(-2000)}`,
    );
  }
  return r;
}

/**
 * Uploads the bundle and brings the project up, after stopping any other inferbench project on
 * the host (arm swap; the shared HF cache volume stays). Returns the bundle hash deployed.
 */
export async function deployBundle(host: RemoteHost, req: DeployRequest): Promise<string> {
  const dir = projectDir(req.remoteRoot, req.projectName);
  const hash = bundleHash(req.files);
  const ls = await host.exec(COMPOSE_LS_COMMAND, req.signal ? { signal: req.signal } : {});
  for (const other of projectsToStop(ls.code === 0 ? ls.stdout : "[]", req.projectName)) {
    await must(host, composeDownCommand(other), req);
  }
  await host.upload(
    dir,
    { ...req.files, [HF_ENV_FILE]: hfEnvFile(req.hfToken) },
    { [HF_ENV_FILE]: 0o600 },
  );
  // A failed start names the services and carries their last log lines: the host may be gone
  // (destroyed in `finally`) by the time a person looks.
  const withLogs = async (err: Error): Promise<Error> => {
    const logs = await host
      .exec(composeLogsCommand(dir, req.projectName, 40), { timeoutMs: 30_000 })
      .catch(() => undefined);
    if (logs?.stdout) err.message += `\nlast log lines:\n${logs.stdout.slice(-4000)}`;
    return err;
  };
  try {
    await must(host, composeUpCommand(dir, req.projectName, req.waitTimeoutSec), req);
  } catch (err) {
    if (req.signal?.aborted) {
      await host.exec(stopUpCommand(dir), { timeoutMs: 30_000 }).catch(() => undefined);
      throw err;
    }
    throw await withLogs(err as Error);
  }
  const ps = await must(host, composePsCommand(dir, req.projectName), req);
  const bad = unhealthyServices(parseComposePs(ps.stdout));
  if (bad.length)
    throw await withLogs(
      new Error(
        `compose up --wait returned, but these services are not healthy: ${bad.join(", ")}`,
      ),
    );
  await host.upload(dir, { [BUNDLE_HASH_FILE]: `${hash}\n` });
  return hash;
}

/** Stops the project (destroy of the deploy resource; the VM itself goes with `pulumi destroy`). */
export async function undeployBundle(host: RemoteHost, projectName: string): Promise<void> {
  await must(host, composeDownCommand(projectName), {});
}

export interface ReadinessOptions {
  timeoutMs: number;
  intervalMs?: number;
  signal?: AbortSignal;
  log?: (msg: string) => void;
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export const READINESS_COMMAND = `if [ -f ${READY_MARKER} ]; then echo ready; elif [ -f ${FAILED_MARKER} ]; then echo failed; cat ${FAILED_MARKER}; else echo waiting; fi`;

/**
 * Connects (retrying while the VM boots and until the provisioned host key is installed) and
 * waits for the startup script's readiness marker. A failed startup script ends the wait at once.
 */
export async function waitForHostReady(
  connect: () => Promise<RemoteHost>,
  opts: ReadinessOptions,
): Promise<RemoteHost> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const now = opts.now ?? Date.now;
  const deadline = now() + opts.timeoutMs;
  let lastError: unknown;
  while (true) {
    if (opts.signal?.aborted) throw opts.signal.reason ?? new Error("aborted");
    let host: RemoteHost | undefined;
    try {
      host = await connect();
      const r = await host.exec(READINESS_COMMAND, opts.signal ? { signal: opts.signal } : {});
      const state = r.stdout.split("\n")[0]?.trim();
      if (state === "ready") return host;
      if (state === "failed") {
        host.close();
        throw new StartupFailedError(r.stdout.split("\n").slice(1).join("\n").trim());
      }
      lastError = new Error("startup script still running");
      host.close();
    } catch (err) {
      if (err instanceof StartupFailedError) throw err;
      host?.close();
      lastError = err;
      opts.log?.(`host not ready yet: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (now() >= deadline) {
      const why = lastError instanceof Error ? lastError.message : String(lastError);
      const e = new Error(`host not ready after ${Math.round(opts.timeoutMs / 1000)} s: ${why}`);
      if (lastError instanceof HostKeyMismatchError) e.cause = lastError;
      throw e;
    }
    await sleep(opts.intervalMs ?? 10_000);
  }
}

export class StartupFailedError extends Error {
  constructor(detail: string) {
    super(
      `the VM's startup script failed: ${detail} (see /var/log/inferbench-startup.log on the VM)`,
    );
    this.name = "StartupFailedError";
  }
}

/**
 * How each kind of corpus case is run. A runner turns a case into { code, output }: the exit code
 * the CLI would exit with and everything it would print. Cases run in-process (fast: 250 spawns
 * of tsx would take minutes on 2 cores) through the same functions the CLI calls (planStack,
 * buildProgram, handleError); `spawn: true` runs the real bin/inferbench.js instead.
 * `http` cases go to an engine-sim and the router in front of it, started in this process once.
 */
import childProcess, { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { handleError } from "../../cli/handle-error.ts";
import { buildProgram } from "../../cli/index.ts";
import { createLogger } from "../../lib/logger.ts";
import { startEngineHost } from "../../services/engine-sim/host.ts";
import { DEFAULT_POLICY_OPTIONS, startRouter } from "../../services/router/index.ts";
import { parseSetOverride } from "../../stacks/config.ts";
import { planStack } from "../../targets/plan-stack.ts";

export const CORPUS = fileURLToPath(new URL(".", import.meta.url));
export const FILES = join(CORPUS, "files");
const BIN = fileURLToPath(new URL("../../bin/inferbench.js", import.meta.url));

/** One case: the generic fields every kind has, plus the kind's own input fields. */
export interface Case {
  id: string;
  kind: string;
  /** Expected exit code (process-like kinds); default 2. */
  exit?: number;
  /** Substrings the output must hold; `{at:PATH}` is the stack file position of PATH, `{file}` the stack file name. */
  expect: string[];
  /** Substrings the output must not hold (secrets). */
  notExpect?: string[];
  /** Default 10,000 ms. */
  timeoutMs?: number;
  /** Run the real CLI in a child process (cli kind only). */
  spawn?: boolean;
  /** Why the case exists (free text). */
  why?: string;
  [field: string]: unknown;
}

export interface Outcome {
  code: number;
  output: string;
  /** Text of the stack file the case wrote (stack-backed kinds), for `{at:…}` placeholders. */
  stackText?: string;
  stackName?: string;
  /** Pid of a spawned CLI (its process group must be gone afterwards). */
  pid?: number;
}

export interface Ctx {
  /** A fresh folder per case (cwd of in-process CLI runs, stacks folder). */
  tmp: string;
}

export type Runner = (c: Case, ctx: Ctx) => Promise<Outcome>;

// --- output capture and the spawn guard ---------------------------------------------------------

/**
 * Runs fn with process stdout/stderr captured and child processes forbidden: a bad-input case
 * must be refused before anything starts, and a case that starts something is a failure, not a
 * stray engine left running.
 */
async function captured(fn: () => Promise<number>): Promise<{ code: number; output: string }> {
  let output = "";
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  // The CLI writes text; the test runner reports through the same stdout as serialized bytes,
  // which must pass through untouched.
  const sinkFor =
    (write: typeof process.stdout.write) =>
    (chunk: unknown, ...rest: unknown[]): boolean => {
      if (typeof chunk !== "string") return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
      output += chunk;
      const cb = rest.find((r) => typeof r === "function") as (() => void) | undefined;
      cb?.();
      return true;
    };
  const cp = childProcess as unknown as Record<string, unknown>;
  const saved: Record<string, unknown> = {};
  const names = ["spawn", "spawnSync", "fork", "exec", "execFile", "execSync", "execFileSync"];
  for (const n of names) {
    saved[n] = cp[n];
    cp[n] = () => {
      throw new Error(`corpus guard: the case tried to start a process (child_process.${n})`);
    };
  }
  syncBuiltinESMExports();
  process.stdout.write = sinkFor(out) as typeof process.stdout.write;
  process.stderr.write = sinkFor(err) as typeof process.stderr.write;
  const exitCode = process.exitCode;
  try {
    const code = await fn();
    return { code, output };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
    process.exitCode = exitCode;
    for (const n of names) cp[n] = saved[n];
    syncBuiltinESMExports();
  }
}

/** Like cli/main.ts: the program's exit code, every failure through the one handler. */
async function runProgram(args: string[]): Promise<number> {
  process.exitCode = undefined;
  try {
    await buildProgram().parseAsync(["node", "inferbench", ...args]);
    return Number(process.exitCode ?? 0);
  } catch (err) {
    return handleError(err);
  }
}

async function inCwd<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const before = process.cwd();
  process.chdir(dir);
  try {
    return await fn();
  } finally {
    process.chdir(before);
  }
}

// --- stacks -------------------------------------------------------------------------------------

const PROJECT = "inferbench";

/** Applies `patch` (config path → JSON value, null deletes) to a base stack, keeping its layout. */
export function patchStack(base: string, patch: Record<string, unknown>): string {
  const doc = parseDocument(base);
  for (const [pathText, value] of Object.entries(patch)) {
    const path = parseSetOverride(`${pathText}=`).path;
    const config = doc.get("config", true);
    const first = String(path[0]);
    const existing =
      isMap(config) &&
      config.items.find(
        (p) => isScalar(p.key) && (p.key.value === first || p.key.value === `${PROJECT}:${first}`),
      );
    const key =
      existing && isScalar(existing.key) ? String(existing.key.value) : `${PROJECT}:${first}`;
    const full = ["config", key, ...path.slice(1)];
    if (value === null) doc.deleteIn(full);
    else doc.setIn(full, doc.createNode(value));
  }
  return doc.toString({ lineWidth: 0 });
}

/** `file:line:col` of a config path in a stack text (the key; a list item itself). */
export function positionOf(text: string, file: string, pathText: string): string {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const path = parseSetOverride(`${pathText}=`).path;
  let node: unknown = doc.get("config", true);
  let offset: number | undefined;
  path.forEach((seg, i) => {
    if (isMap(node)) {
      const pair = node.items.find(
        (p) =>
          isScalar(p.key) &&
          (p.key.value === seg || (i === 0 && p.key.value === `${PROJECT}:${seg}`)),
      );
      offset = (pair?.key as { range?: number[] } | undefined)?.range?.[0];
      node = pair?.value;
    } else if (isSeq(node) && typeof seg === "number") {
      node = node.items[seg];
      offset = (node as { range?: number[] } | undefined)?.range?.[0];
    } else offset = undefined;
  });
  if (offset === undefined)
    throw new Error(`placeholder {at:${pathText}}: no such key in the case's stack file`);
  const p = lc.linePos(offset);
  return `${file}:${p.line}:${p.col}`;
}

const stackName = (id: string) => id.replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^[.-]+/, "");

/** The stack text of a case: a file, inline text, or a base with a patch / appended text. */
function stackTextOf(c: Case): string {
  let text: string;
  if (typeof c.file === "string") text = readFileSync(join(FILES, c.file), "utf8");
  else if (typeof c.text === "string") text = c.text;
  else
    text = readFileSync(
      join(CORPUS, "bases", `${(c.base as string | undefined) ?? "local"}.yaml`),
      "utf8",
    );
  if (c.patch) text = patchStack(text, c.patch as Record<string, unknown>);
  for (const [from, to] of (c.replace as [string, string][] | undefined) ?? []) {
    if (!text.includes(from)) throw new Error(`replace: "${from}" is not in the stack text`);
    text = text.replace(from, to);
  }
  if (typeof c.append === "string") text += c.append;
  return text;
}

/** Writes the stack and plans it as every command does (planStack), in the corpus files folder. */
async function runStack(c: Case, ctx: Ctx, text: string): Promise<Outcome> {
  const name = stackName(c.id);
  const stacksDir = join(ctx.tmp, "stacks");
  mkdirSync(stacksDir, { recursive: true });
  const file = join(stacksDir, `Pulumi.${name}.yaml`);
  if (c.setup === "directory") mkdirSync(file);
  else writeFileSync(file, text);
  const logger = createLogger("", (l) => process.stderr.write(`${l}\n`));
  const r = await captured(() =>
    inCwd(FILES, async () => {
      try {
        planStack(name, (c.set as string[] | undefined) ?? [], {
          stacksDir,
          env: (c.env as NodeJS.ProcessEnv | undefined) ?? {},
        });
        return 0;
      } catch (err) {
        return handleError(err, logger);
      }
    }),
  );
  return { ...r, stackText: text, stackName: `Pulumi.${name}.yaml` };
}

const stack: Runner = (c, ctx) => runStack(c, ctx, c.setup === "directory" ? "" : stackTextOf(c));

/**
 * Dataset and trace cases: a dataset file read through a stack (the refusal names the stack
 * position of workload.dataset.path and the file's line), or through `inferbench profile`.
 */
const dataset: Runner = async (c, ctx) => {
  const ds = { ...(c.dataset as Record<string, unknown>) };
  if (c.via === "profile") {
    const args = [
      "profile",
      "-m",
      "llama-3.1-8b",
      "-u",
      "127.0.0.1:9",
      "--artifact-dir",
      join(ctx.tmp, "artifacts"),
      "--workload",
      String(ds.kind),
      ...(ds.path !== undefined ? ["--input-file", String(ds.path)] : []),
      ...((c.args as string[] | undefined) ?? []),
    ];
    return captured(() => inCwd(FILES, () => runProgram(args)));
  }
  const base = readFileSync(
    join(CORPUS, "bases", `${(c.base as string | undefined) ?? "local"}.yaml`),
    "utf8",
  );
  return runStack(
    c,
    ctx,
    patchStack(base, { "workload.dataset": ds, ...((c.patch as object) ?? {}) }),
  );
};

/** CLI cases: argv as typed, in-process through buildProgram (or spawned when `spawn`). */
const cli: Runner = async (c, ctx) => {
  const args = (c.args as string[]).map((a) =>
    a.replaceAll("{tmp}", ctx.tmp).replaceAll("{files}", FILES),
  );
  if (
    args[0] === "profile" &&
    !args.some((a) => a === "-u" || a === "--url" || a.startsWith("--url="))
  )
    args.push("-u", "127.0.0.1:9");
  if (args[0] === "profile" && !args.includes("--artifact-dir"))
    args.push("--artifact-dir", join(ctx.tmp, "artifacts"));
  if (args[0] === "run" && !args.includes("--runs-dir"))
    args.push("--runs-dir", join(ctx.tmp, "runs"));
  if (c.spawn) return spawnCli(args, ctx, c.timeoutMs ?? 10_000);
  return captured(() => inCwd(ctx.tmp, () => runProgram(args)));
};

function spawnCli(args: string[], ctx: Ctx, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    // Its own process group, so the test can check that nothing of it is left running.
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ctx.tmp,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, HF_TOKEN: "" },
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {}
    }, timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), output, pid: child.pid! });
    });
  });
}

// --- http: the router and engine-sim, in this process ------------------------------------------

interface HttpServers {
  ports: Record<"router" | "engine-sim", number>;
  close(): Promise<void>;
}
let servers: Promise<HttpServers> | undefined;

/** One engine-sim (a 256-token context, to reach the length checks cheaply) behind the router. */
async function startHttpServers(): Promise<HttpServers> {
  const quiet = createLogger("corpus", () => {});
  const engine = await startEngineHost(
    [
      {
        name: "llama",
        model: "llama",
        gpus: [0],
        port: 0,
        kvcached: false,
        prefixCaching: true,
        maxModelLen: 256,
        emulator: { profile: "llama-3.1-8b@h100" },
      },
    ],
    { startupDelaySec: 0, log: quiet, seed: 1 },
  );
  const enginePort = engine.ports.llama!;
  const router = await startRouter({
    policy: "least-busy",
    port: 0,
    host: "127.0.0.1",
    pollIntervalMs: 50,
    requestTimeoutMs: 5000,
    options: DEFAULT_POLICY_OPTIONS,
    backends: { llama: [{ engine: "llama-0", url: `http://127.0.0.1:${enginePort}` }] },
    logger: quiet,
  });
  // The router serves once its poller has seen the engine healthy.
  for (let i = 0; i < 100; i++) {
    const h = await fetch(`http://127.0.0.1:${router.port}/health`).catch(() => undefined);
    await h?.arrayBuffer();
    if (h?.status === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    ports: { router: router.port, "engine-sim": enginePort },
    close: async () => {
      await router.close();
      await engine.close();
    },
  };
}

export async function closeHttpServers(): Promise<void> {
  const s = servers;
  servers = undefined;
  if (s) await (await s).close();
}

/** An OpenAI-format error body: {"error": {"message", "type", "param", "code"}}. */
function openAiErrorShape(text: string): string | undefined {
  try {
    const e = (JSON.parse(text) as { error?: Record<string, unknown> }).error;
    if (e && typeof e.message === "string" && e.message && typeof e.type === "string")
      if ("param" in e && "code" in e) return undefined;
    return "not an OpenAI-format error body";
  } catch {
    return "not JSON";
  }
}

const httpCase: Runner = async (c) => {
  servers ??= startHttpServers();
  const s = await servers;
  const target = (c.target as "router" | "engine-sim" | undefined) ?? "router";
  const body =
    typeof c.bodyBytes === "number"
      ? "x".repeat(c.bodyBytes)
      : typeof c.bodyText === "string"
        ? c.bodyText
        : c.body !== undefined
          ? JSON.stringify(c.body)
          : undefined;
  const method = (c.method as string | undefined) ?? "POST";
  const r = await fetch(`http://127.0.0.1:${s.ports[target]}${c.path as string}`, {
    method,
    headers: { "content-type": "application/json", ...(c.headers as Record<string, string>) },
    ...(body !== undefined ? { body } : {}),
    signal: AbortSignal.timeout(9000),
  });
  const text = await r.text();
  const shape = openAiErrorShape(text);
  return {
    code: shape ? -1 : r.status,
    output: `${target} ${method} ${c.path} → HTTP ${r.status}${shape ? ` (${shape})` : ""}\n${text}`,
  };
};

export const RUNNERS: Record<string, Runner> = {
  stack,
  dataset,
  trace: dataset,
  cli,
  http: httpCase,
};

/** Pids of live processes whose parent is `ppid`, or whose process group is `pgid`. */
export function processesOf(opts: { ppid?: number; pgid?: number }): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue;
    }
    // Fields after the command name (which may hold spaces): state ppid pgrp ...
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (f[0] === "Z") continue;
    if (
      (opts.ppid !== undefined && Number(f[1]) === opts.ppid) ||
      (opts.pgid !== undefined && Number(f[2]) === opts.pgid)
    )
      out.push(Number(entry));
  }
  return out;
}

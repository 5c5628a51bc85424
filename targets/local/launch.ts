/**
 * Local launcher (the embedded default's deployer): runs a plan's engines (one engine-sim process
 * hosting every engine, so KVCached engines on one virtual GPU share a page pool) and its router as
 * child processes on loopback, waits for /health, and stops them. Children run the same
 * `inferbench serve ...` commands a container would, and exit by themselves if this process dies.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomicSync } from "../../lib/atomic.ts";
import { UserError } from "../../lib/errors.ts";
import { EXIT_WITH_PARENT_ENV } from "../../lib/exit-with-parent.ts";
import type { Logger } from "../../lib/logger.ts";
import type { StackPlan } from "../../stacks/plan-types.ts";

/** The services' own entry points, run through tsx (no build step), as their containers run them. */
const ENGINE_SIM_MAIN = fileURLToPath(
  new URL("../../services/engine-sim/main.ts", import.meta.url),
);
const ROUTER_MAIN = fileURLToPath(new URL("../../services/router/main.ts", import.meta.url));
const TSX_LOADER = import.meta.resolve("tsx");

export interface LocalDeployment {
  plan: StackPlan;
  routerUrl: string;
  engineUrls: Record<string, string>;
  pids: number[];
  stop(): Promise<void>;
}

/** Free loopback ports (bound then released; loopback-only, so a race is unlikely and harmless). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import("node:net").Server>((resolve, reject) => {
          const s = createServer();
          s.once("error", reject);
          s.listen(0, "127.0.0.1", () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as import("node:net").AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** The plan with every engine and the router moved to the given ports (args and backends too). */
export function withPorts(
  plan: StackPlan,
  enginePorts: readonly number[],
  routerPort: number,
): StackPlan {
  const portOf = new Map(plan.engines.map((e, i) => [e.name, enginePorts[i]!]));
  return {
    ...plan,
    engines: plan.engines.map((e) => {
      const port = portOf.get(e.name)!;
      const args = [...e.args];
      const at = args.indexOf("--port");
      if (at !== -1) args[at + 1] = String(port);
      return { ...e, port, args };
    }),
    router: {
      ...plan.router,
      port: routerPort,
      backends: Object.fromEntries(
        Object.entries(plan.router.backends).map(([m, bs]) => [
          m,
          bs.map((b) => ({ ...b, port: portOf.get(b.engine)! })),
        ]),
      ),
    },
  };
}

async function healthy(url: string): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

export interface LaunchOptions {
  /** Folder for plan.json and the children's logs. */
  dir: string;
  log: Logger;
  readyTimeoutMs?: number;
  seed?: number;
  signal?: AbortSignal;
}

export async function launchLocal(plan: StackPlan, opts: LaunchOptions): Promise<LocalDeployment> {
  if (plan.target !== "local")
    throw new UserError(`launchLocal runs local plans; "${plan.stack}" targets ${plan.target}`);
  const ports = await freePorts(plan.engines.length + 1);
  const deployed = withPorts(plan, ports.slice(0, -1), ports.at(-1)!);
  const planFile = join(opts.dir, "plan.json");
  writeFileAtomicSync(planFile, `${JSON.stringify(deployed, null, 2)}\n`);

  const children: {
    name: string;
    proc: ChildProcess;
    log: WriteStream;
    exited: Promise<number | null>;
  }[] = [];
  const start = (name: string, main: string, args: string[]) => {
    const log = createWriteStream(join(opts.dir, `${name}.log`));
    const proc = spawn(process.execPath, ["--import", TSX_LOADER, main, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, [EXIT_WITH_PARENT_ENV]: "1" },
    });
    proc.stdout?.pipe(log, { end: false });
    proc.stderr?.pipe(log, { end: false });
    const exited = new Promise<number | null>((resolve) =>
      proc.once("exit", (code) => resolve(code)),
    );
    children.push({ name, proc, log, exited });
  };

  const stop = async () => {
    await Promise.all(
      children.map(async (c) => {
        if (c.proc.exitCode === null && c.proc.signalCode === null) {
          c.proc.kill("SIGTERM");
          const killer = setTimeout(() => c.proc.kill("SIGKILL"), 5000);
          await c.exited;
          clearTimeout(killer);
        }
        await new Promise((r) => c.log.end(r));
      }),
    );
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  try {
    const engineUrls = Object.fromEntries(
      deployed.engines.map((e) => [e.name, `http://127.0.0.1:${e.port}`]),
    );
    const routerUrl = `http://127.0.0.1:${deployed.router.port}`;
    start("engines", ENGINE_SIM_MAIN, [
      "--plan",
      planFile,
      "--seed",
      String(opts.seed ?? 0),
      "--host",
      "127.0.0.1",
    ]);
    await waitUntil(
      Object.values(engineUrls).map((u) => `${u}/health`),
      healthy,
    );
    // The router starts once engines answer, so it does not begin with every replica ejected.
    start("router", ROUTER_MAIN, ["--plan", planFile, "--host", "127.0.0.1"]);
    await waitUntil([`${routerUrl}/health`], routerReady);
    opts.log.debug(
      `local ${plan.mode} stack ready: router ${routerUrl}, ${deployed.engines.length} engines`,
    );
    return {
      plan: deployed,
      routerUrl,
      engineUrls,
      pids: children.map((c) => c.proc.pid!).filter(Boolean),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }

  async function waitUntil(
    urls: string[],
    ready: (url: string) => Promise<boolean>,
  ): Promise<void> {
    const pending = new Set(urls);
    while (pending.size > 0) {
      opts.signal?.throwIfAborted();
      const dead = children.find((c) => c.proc.exitCode !== null || c.proc.signalCode !== null);
      if (dead) {
        throw new UserError(
          `${dead.name} exited (code ${dead.proc.exitCode ?? dead.proc.signalCode}) before it was ready`,
          {
            exitCode: 1,
            hint: `see ${join(opts.dir, `${dead.name}.log`)}`,
          },
        );
      }
      if (Date.now() > deadline) {
        throw new UserError(
          `not ready after ${(opts.readyTimeoutMs ?? 60_000) / 1000} s: ${[...pending].join(", ")}`,
          {
            exitCode: 1,
          },
        );
      }
      for (const url of [...pending]) if (await ready(url)) pending.delete(url);
      if (pending.size > 0) await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The router is ready when every replica it knows is healthy. */
async function routerReady(url: string): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
    const body = (await r.json()) as { replicas?: number; healthy?: number };
    return r.status === 200 && body.replicas !== undefined && body.healthy === body.replicas;
  } catch {
    return false;
  }
}

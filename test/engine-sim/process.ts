/** Runs services/engine-sim/main.ts as a child process (entry-point and isolation tests). */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const MAIN = "services/engine-sim/main.ts";

export interface EngineSimProcess {
  child: ChildProcess;
  /** stderr and stdout so far. */
  output: () => string;
  exit: Promise<number | null>;
}

/** `ENGINE_SIM_NODE_FLAGS="--trace-gc"` passes node flags to the child (diagnosing stalls). */
export function runEngineSim(args: string[]): EngineSimProcess {
  const child = spawn(
    process.execPath,
    [
      ...(process.env.ENGINE_SIM_NODE_FLAGS?.split(" ").filter(Boolean) ?? []),
      "--import",
      "tsx",
      MAIN,
      ...args,
    ],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => out, exit };
}

/** The port engine `name` listens on, from the ready line; fails after `timeoutMs`. */
export async function readyPort(p: EngineSimProcess, name: string, timeoutMs = 30_000) {
  const t0 = Date.now();
  const re = new RegExp(`ready to accept connections: .*\\b${name}=[^:]+:(\\d+)`);
  for (;;) {
    const m = re.exec(p.output());
    if (m) return Number(m[1]);
    if (p.child.exitCode !== null)
      throw new Error(`engine-sim exited (${p.child.exitCode}) before ready: ${p.output()}`);
    if (Date.now() - t0 > timeoutMs)
      throw new Error(`engine-sim not ready within ${timeoutMs} ms: ${p.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The exit code, or a failure naming the process when it has not exited within `timeoutMs`. */
export async function exitWithin(p: EngineSimProcess, timeoutMs = 15_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `engine-sim (pid ${p.child.pid}) did not exit within ${timeoutMs} ms: ${p.output().slice(-2000)}`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([p.exit, late]);
  } finally {
    clearTimeout(timer);
  }
}

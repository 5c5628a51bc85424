/**
 * How the kit runs the Pulumi CLI: in its own process group, so that a Ctrl-C in the terminal
 * (SIGINT to the whole foreground group) does not reach it. The kit then forwards exactly one
 * SIGINT on the first abort — Pulumi's graceful cancel, which lets in-flight cloud operations
 * finish and records them in the state — and a second one only on a hard abort (second Ctrl-C),
 * which Pulumi takes as "stop now". Spawned with the terminal's group, Pulumi would get the
 * terminal's SIGINT and the Automation API's own SIGINT at once: two signals, i.e. an immediate
 * stop that can leave a VM running that the state does not know about.
 *
 * A detached Pulumi also outlives a kit killed with SIGKILL: it finishes the operation and
 * writes the state, which `inferbench destroy` then reads.
 */
import { type ChildProcess, spawn } from "node:child_process";

export interface ProcessResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface DetachedRunner {
  run(
    command: string,
    args: string[],
    opts: {
      cwd?: string;
      env?: Record<string, string>;
      onOutput?: (s: string) => void;
      onError?: (s: string) => void;
      signal?: AbortSignal;
    },
  ): Promise<ProcessResult>;
  /** A second SIGINT to every running process (Pulumi then stops at once). */
  interruptAgain(): void;
  /** PIDs of the processes still running (for tests and diagnostics). */
  running(): number[];
}

function interrupt(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, "SIGINT");
  } catch {
    // already gone
  }
}

export function detachedRunner(): DetachedRunner {
  const live = new Set<ChildProcess>();
  return {
    run(command, args, opts) {
      return new Promise((resolve, reject) => {
        const child = spawn(command, args, {
          cwd: opts.cwd,
          env: { ...process.env, ...opts.env },
          // Own process group: the terminal's Ctrl-C goes to the kit only.
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
        });
        live.add(child);
        let stdout = "";
        let stderr = "";
        child.stdout!.setEncoding("utf8").on("data", (d: string) => {
          stdout += d;
          opts.onOutput?.(d);
        });
        child.stderr!.setEncoding("utf8").on("data", (d: string) => {
          stderr += d;
          opts.onError?.(d);
        });
        let interrupted = false;
        const onAbort = () => {
          if (interrupted) return;
          interrupted = true; // one signal per abort: the graceful cancel
          interrupt(child);
        };
        if (opts.signal?.aborted) onAbort();
        else opts.signal?.addEventListener("abort", onAbort, { once: true });
        child.on("error", (err) => {
          live.delete(child);
          opts.signal?.removeEventListener("abort", onAbort);
          reject(err);
        });
        child.on("close", (code, sig) => {
          live.delete(child);
          opts.signal?.removeEventListener("abort", onAbort);
          resolve({ stdout, stderr, code: code ?? (sig ? 128 + 2 : 1) });
        });
      });
    },
    interruptAgain() {
      for (const c of live) interrupt(c);
    },
    running() {
      return [...live].flatMap((c) => (c.pid === undefined ? [] : [c.pid]));
    },
  };
}

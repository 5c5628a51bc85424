/**
 * fake-gcs-server on loopback for the --upload tests: a real GCS JSON API (and resumable uploads)
 * in memory, started and stopped by the test. The binary comes from
 * testkit/install-fake-gcs-server.sh (version-keyed cache); without it the tests skip, saying so,
 * unless INFERBENCH_UPLOAD_REQUIRED=1 (CI), where they fail.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { freePorts } from "../targets/local/launch.ts";

export const FAKE_GCS_VERSION = "1.56.1";

export function fakeGcsBinary(): { bin: string } | { skip: string } {
  const cache = process.env.INFERBENCH_CACHE ?? join(homedir(), ".cache", "inferbench");
  const bin = join(cache, `fake-gcs-server-${FAKE_GCS_VERSION}`, "bin", "fake-gcs-server");
  if (existsSync(bin)) return { bin };
  const why = `fake-gcs-server ${FAKE_GCS_VERSION} is not built (bash testkit/install-fake-gcs-server.sh, or npm run test:upload)`;
  if (process.env.INFERBENCH_UPLOAD_REQUIRED === "1")
    throw new Error(`INFERBENCH_UPLOAD_REQUIRED=1 but ${why}`);
  return { skip: why };
}

export interface FakeGcs {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

export async function startFakeGcs(bin: string): Promise<FakeGcs> {
  const [port] = await freePorts(1);
  const hostPort = `127.0.0.1:${port}`;
  const proc = spawn(
    bin,
    [
      "-scheme",
      "http",
      "-host",
      "127.0.0.1",
      "-port",
      String(port),
      "-public-host",
      hostPort,
      "-external-url",
      `http://${hostPort}`,
      "-backend",
      "memory",
      "-log-level",
      "error",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  proc.stderr!.on("data", (d) => (stderr += d));
  const url = `http://${hostPort}`;
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await gone;
  };
  const t0 = Date.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`fake-gcs-server exited: ${stderr}`);
    try {
      const r = await fetch(`${url}/storage/v1/b`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.ok) return { url, proc, stop };
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > 20_000) {
      await stop();
      throw new Error(`fake-gcs-server not ready after 20 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

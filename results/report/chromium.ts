/**
 * Headless Chromium (Debian's `chromium` package) driven through its CLI: screenshots and DOM
 * dumps of local files, a fresh profile per launch, no network features, a hard timeout that
 * kills the browser's whole process group.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Where Debian installs it; INFERBENCH_CHROMIUM overrides (e.g. a distro with another path). */
export function chromiumPath(): string {
  return process.env["INFERBENCH_CHROMIUM"] || "/usr/bin/chromium";
}

export function findChromium(): string | undefined {
  const p = chromiumPath();
  return existsSync(p) ? p : undefined;
}

export const CHROMIUM_MISSING_HINT =
  "install it with `apt-get update && apt-get install -y chromium` (Debian/Ubuntu), or set INFERBENCH_CHROMIUM to a Chromium binary";

export function baseFlags(userDataDir: string): string[] {
  return [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    `--user-data-dir=${userDataDir}`,
  ];
}

export interface ChromiumResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs chromium with the base flags plus `args`; rejects on timeout (after killing it). */
export async function runChromium(
  args: string[],
  opts: { timeoutMs?: number; binary?: string } = {},
): Promise<ChromiumResult> {
  const bin = opts.binary ?? findChromium();
  if (!bin)
    throw new Error(`headless Chromium not found at ${chromiumPath()}: ${CHROMIUM_MISSING_HINT}`);
  const profile = await mkdtemp(join(tmpdir(), "inferbench-chromium-"));
  try {
    return await new Promise<ChromiumResult>((resolve, reject) => {
      const child = spawn(bin, [...baseFlags(profile), ...args], {
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
        env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: "disabled:" },
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on("data", (d: Buffer) => out.push(d));
      child.stderr.on("data", (d: Buffer) => err.push(d));
      const timer = setTimeout(() => {
        try {
          if (child.pid) process.kill(-child.pid, "SIGKILL");
        } catch {
          child.kill("SIGKILL");
        }
        reject(new Error(`chromium timed out after ${opts.timeoutMs ?? 60000} ms`));
      }, opts.timeoutMs ?? 60000);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({
          code,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
        });
      });
    });
  } finally {
    await rm(profile, { recursive: true, force: true, maxRetries: 3 });
  }
}

/**
 * The router's container entry point runs on its own: services/router/main.ts as a process, and
 * the Dockerfile copies everything it imports (and nothing from cli/).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { startSseBackend } from "../../testkit/sse-backend.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = "services/router/main.ts";

/** Relative imports reachable from `entry` (repo-relative paths). */
function importClosure(entry: string): string[] {
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const f = queue.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    const src = readFileSync(path.join(ROOT, f), "utf8");
    for (const m of src.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g))
      queue.push(path.posix.normalize(path.posix.join(path.posix.dirname(f), m[1]!)));
  }
  return [...seen].sort();
}

function run(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  child.stdout!.resume();
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, stderr: () => err, exit };
}

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
});

describe("router entry point (services/router/main.ts)", () => {
  it("imports nothing from cli/, and the Dockerfile copies every file it imports", () => {
    const files = importClosure(MAIN);
    assert.ok(files.includes("services/router/server.ts"), files.join(" "));
    const fromCli = files.filter((f) => f.startsWith("cli/"));
    assert.deepEqual(fromCli, [], "services/router must not import cli/");
    const docker = readFileSync(path.join(ROOT, "services/router/Dockerfile"), "utf8");
    const copied = [...docker.matchAll(/^COPY\s+(\S+)\s+\S+$/gm)].map((m) => m[1]!);
    assert.ok(!copied.some((c) => c.startsWith("cli")), `Dockerfile copies ${copied}`);
    const missing = files.filter(
      (f) => !copied.some((c) => f === c || f.startsWith(`${c.replace(/\/$/, "")}/`)),
    );
    assert.deepEqual(missing, [], "files main.ts imports that the image lacks");
  });

  it("serves requests standalone and exits 0 on SIGTERM", async () => {
    const b = await startSseBackend({ name: "b0", tokens: 3 });
    after(() => b.close());
    const p = run([
      "--policy",
      "round-robin",
      "--backends",
      `m=${b.url}`,
      "--port",
      "0",
      "--host",
      "127.0.0.1",
    ]);
    children.push(p.child);
    const t0 = Date.now();
    let port = 0;
    while (port === 0) {
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(p.stderr());
      if (m) port = Number(m[1]);
      else if (Date.now() - t0 > 30_000 || p.child.exitCode !== null)
        assert.fail(`router did not start: ${p.stderr()}`);
      else await new Promise((r) => setTimeout(r, 50));
    }
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "m", stream: true, messages: [] }),
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-inferbench-backend"), "m-0");
    assert.match(await res.text(), /data: \[DONE\]\n\n$/);
    p.child.kill("SIGTERM");
    assert.equal(await p.exit, 0);
  });

  it("prints help with exit 0 and rejects a bad flag with exit 2", async () => {
    const help = run(["--help"]);
    children.push(help.child);
    assert.equal(await help.exit, 0);
    const bad = run(["--policy", "random", "--backends", "m=http://127.0.0.1:1"]);
    children.push(bad.child);
    assert.equal(await bad.exit, 2);
    assert.match(bad.stderr(), /--policy:/);
  });
});

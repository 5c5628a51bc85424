/**
 * engine-sim's container entry point runs on its own: services/engine-sim/main.ts as a process,
 * and the Dockerfile copies everything it imports (and nothing from cli/).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { exitWithin, MAIN, ROOT, readyPort, runEngineSim } from "./process.ts";

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

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
});

describe("engine-sim entry point (services/engine-sim/main.ts)", () => {
  it("imports nothing from cli/, and the Dockerfile copies every file it imports", () => {
    const files = importClosure(MAIN);
    assert.ok(files.includes("services/engine-sim/server.ts"), files.join(" "));
    assert.ok(files.includes("services/engine-sim/options.ts"), files.join(" "));
    const fromCli = files.filter((f) => f.startsWith("cli/"));
    assert.deepEqual(fromCli, [], "services/engine-sim must not import cli/");
    const docker = readFileSync(path.join(ROOT, "services/engine-sim/Dockerfile"), "utf8");
    const copied = [...docker.matchAll(/^COPY\s+(\S+)\s+\S+$/gm)].map((m) => m[1]!);
    assert.ok(!copied.some((c) => c.startsWith("cli")), `Dockerfile copies ${copied}`);
    const missing = files.filter(
      (f) => !copied.some((c) => f === c || f.startsWith(`${c.replace(/\/$/, "")}/`)),
    );
    assert.deepEqual(missing, [], "files main.ts imports that the image lacks");
  });

  it("serves requests standalone (with the CLI's `serve engine-sim` prefix) and exits 0 on SIGTERM", async () => {
    const p = runEngineSim([
      "serve",
      "engine-sim",
      "--profile",
      "llama-3.1-8b@h100",
      "--model",
      "m",
      "--port",
      "0",
      "--host",
      "127.0.0.1",
    ]);
    children.push(p.child);
    const port = await readyPort(p, "m");
    const res = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "m", prompt: "hi", max_tokens: 3, ignore_eos: true }),
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { usage: { completion_tokens: number } };
    assert.equal(body.usage.completion_tokens, 3);
    p.child.kill("SIGTERM");
    assert.equal(await exitWithin(p), 0);
  });

  it("prints help with exit 0 and rejects a bad flag with exit 2", async () => {
    const help = runEngineSim(["--help"]);
    children.push(help.child);
    assert.equal(await exitWithin(help), 0);
    assert.match(help.output(), /inferbench-engine-sim --profile/);
    const bad = runEngineSim(["--profile", "llama-3.1-8b@h100", "--max-model-len", "x"]);
    children.push(bad.child);
    assert.equal(await exitWithin(bad), 2);
    assert.match(bad.output(), /--max-model-len:/);
  });
});

/**
 * The embedded default end to end, as CI runs it: `inferbench run --stack local --quick`,
 * interrupted with SIGINT after the first load point, resumed to completion; plus SIGTERM and a
 * mid-run error. Asserts on what was produced and that no process or port is left behind.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { Comparison } from "../../results/compare-types.ts";

const BIN = fileURLToPath(new URL("../../bin/inferbench.js", import.meta.url));
const runsDir = mkdtempSync(join(tmpdir(), "inferbench-e2e-"));
after(() => rmSync(runsDir, { recursive: true, force: true }));

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[]): {
  proc: ChildProcess;
  done: Promise<Finished>;
  stderr: () => string;
} {
  const proc = spawn(process.execPath, [BIN, ...args, "--runs-dir", runsDir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  proc.stdout!.on("data", (d) => (stdout += d));
  proc.stderr!.on("data", (d) => (stderr += d));
  const done = new Promise<Finished>((resolve) =>
    proc.on("close", (code) => resolve({ code, stdout, stderr })),
  );
  const killer = setTimeout(() => proc.kill("SIGKILL"), 240_000);
  done.finally(() => clearTimeout(killer));
  return { proc, done, stderr: () => stderr };
}

async function waitFor(pred: () => boolean, what: string, ms = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Processes whose command line mentions this test's runs folder (children of a run). */
function leftovers(): string[] {
  const ps = execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" });
  return ps.split("\n").filter((l) => l.includes(runsDir) && !l.includes(" ps "));
}

function planPorts(runDir: string): number[] {
  const ports: number[] = [];
  for (const arm of ["baseline", "managed"]) {
    const f = join(runDir, arm, "plan.json");
    if (!existsSync(f)) continue;
    const plan = JSON.parse(readFileSync(f, "utf8")) as {
      engines: { port: number }[];
      router: { port: number };
    };
    ports.push(plan.router.port, ...plan.engines.map((e) => e.port));
  }
  return ports;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: "127.0.0.1" });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

async function assertNothingLeft(runDir: string): Promise<void> {
  await waitFor(
    () => leftovers().length === 0,
    `children to exit: ${leftovers().join("; ")}`,
    10_000,
  );
  for (const port of planPorts(runDir))
    assert.equal(await listening(port), false, `port ${port} still listening`);
}

const runIdOf = (text: string) => /run (\d{8}-\d{6}-[0-9a-f]{4})/.exec(text)?.[1];

describe("embedded default (quick)", { timeout: 300_000 }, () => {
  it("SIGINT after the first point keeps it, ends every child; --resume completes the run", async () => {
    const first = start(["run", "--stack", "local", "--quick"]);
    await waitFor(() => first.stderr().includes("[2/4]"), "the first load point to complete");
    const runId = runIdOf(first.stderr())!;
    assert.ok(runId, first.stderr());
    first.proc.kill("SIGINT");
    const interrupted = await first.done;
    assert.equal(interrupted.code, 130, interrupted.stderr);
    assert.match(interrupted.stderr, new RegExp(`inferbench run --resume ${runId}`));
    const runDir = join(runsDir, runId);
    await assertNothingLeft(runDir);
    assert.equal(
      JSON.parse(readFileSync(join(runDir, "manifest.json"), "utf8")).status,
      "interrupted",
    );
    const firstPoint = join(runDir, "baseline", "points", "concurrency2", "point.json");
    assert.ok(existsSync(firstPoint), "the completed point is kept");
    const keptAt = statSync(firstPoint).mtimeMs;

    const resumed = await start(["run", "--resume", runId]).done;
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming: 1 of 4 load points already complete/);
    assert.equal(statSync(firstPoint).mtimeMs, keptAt, "a complete point is not re-measured");
    assert.match(resumed.stdout, /EMULATED/);
    assert.match(resumed.stdout, /report: .*report\.html/);
    await assertNothingLeft(runDir);

    const manifest = JSON.parse(readFileSync(join(runDir, "manifest.json"), "utf8"));
    assert.equal(manifest.status, "complete");
    assert.equal(manifest.emulated, true);
    const c = JSON.parse(readFileSync(join(runDir, "comparison.json"), "utf8")) as Comparison;
    assert.equal(c.emulated, true);
    assert.deepEqual(
      [...new Set(c.rows.map((r) => r.model))],
      ["llama-3.1-8b", "qwen2.5-7b", "llama-3.3-70b-awq"],
    );
    assert.equal(c.rows.length, 6, "3 models × 2 load points");
    for (const r of c.rows) {
      for (const s of [r.a, r.b]) {
        assert.ok(s.valid, `${r.model} ${r.point} ${s.label} invalid: ${s.invalidReason}`);
        assert.ok(s.achievedRps > 0 && s.outputTokensPerSec > 0);
        assert.equal(s.errors, 0);
      }
      assert.ok(
        r.deltas.some(
          (d) =>
            d.metric === "ttft_p99_ms" && ["better", "worse", "within noise"].includes(d.verdict),
        ),
      );
    }
    const html = readFileSync(join(runDir, "report.html"), "utf8");
    assert.match(html, /EMULATED/);
    assert.match(readFileSync(join(runDir, "report.md"), "utf8"), /EMULATED/);
    assert.ok(
      readFileSync(join(runDir, "comparison.csv"), "utf8").startsWith("model,point,metric"),
    );
    // Same prompts on both arms at a point; fresh prompts at each point (no cache warmed by an earlier one).
    const inputsOf = (arm: string, point: string) => {
      const dir = join(runDir, arm, "points", point);
      const artifact = readdirSync(dir).find((d) => d.includes("-openai-chat-"))!;
      return readFileSync(join(dir, artifact, "inputs.json"), "utf8");
    };
    assert.equal(inputsOf("baseline", "concurrency2"), inputsOf("managed", "concurrency2"));
    assert.equal(inputsOf("baseline", "concurrency8"), inputsOf("managed", "concurrency8"));
    assert.notEqual(inputsOf("baseline", "concurrency2"), inputsOf("baseline", "concurrency8"));
    // GenAI-Perf artifacts for every arm and point.
    for (const arm of ["baseline", "managed"]) {
      for (const point of ["concurrency2", "concurrency8"]) {
        const dir = join(runDir, arm, "points", point);
        const artifact = readdirSync(dir).find((d) => d.includes("-openai-chat-"));
        assert.ok(artifact, `${dir} has a GenAI-Perf folder`);
        assert.ok(existsSync(join(dir, artifact, "profile_export_genai_perf.csv")));
        assert.ok(existsSync(join(dir, "server-metrics.json")));
      }
    }
  });

  it("SIGTERM during start-up ends every child", async () => {
    const r = start(["run", "--stack", "local", "--quick"]);
    await waitFor(() => r.stderr().includes("starting the baseline arm"), "start-up");
    await new Promise((res) => setTimeout(res, 500));
    r.proc.kill("SIGTERM");
    const done = await r.done;
    assert.equal(done.code, 130, done.stderr);
    await assertNothingLeft(join(runsDir, runIdOf(done.stderr)!));
  });

  it("a missing input file is refused before anything starts: exit 2, no run, nothing left", async () => {
    const before = readdirSync(runsDir);
    const done = await start([
      "run",
      "--stack",
      "local",
      "--quick",
      "--set",
      "workload.dataset={kind: input-file, path: /nonexistent/prompts.jsonl}",
    ]).done;
    assert.equal(done.code, 2, done.stderr);
    assert.match(done.stderr, /\/nonexistent\/prompts\.jsonl/);
    assert.deepEqual(readdirSync(runsDir), before, "no run folder for a run that never started");
    assert.deepEqual(leftovers(), []);
  });
});

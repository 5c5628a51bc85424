/**
 * `inferbench runner` as a container runs it: a real process on a bound plan.json, against a real
 * engine-sim + router on loopback; and its refusals of bad plans (exit 2, naming the file).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { experimentPlan } from "../../experiments/plan.ts";
import { createLogger } from "../../lib/logger.ts";
import { RUNNER_SOME_INVALID } from "../../runner/run-arm.ts";
import { freePorts, launchLocal } from "../../targets/local/launch.ts";
import { planStack } from "../../targets/plan-stack.ts";

const BIN = fileURLToPath(new URL("../../bin/inferbench.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "ib-runner-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A runner process that may run beside others (shards): its exit status and stderr. */
function runnerAsync(args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, "runner", ...args], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    p.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const t = setTimeout(() => p.kill("SIGKILL"), 120_000);
    p.on("close", (status) => {
      clearTimeout(t);
      resolve({ status, stderr });
    });
  });
}

/** Both arms of the local stack with these overrides, and their experiment plan. */
function localPlan(over: string[]) {
  const plans = (["baseline", "managed"] as const).map(
    (a) => planStack("local", [...over, `mode=${a}`]).plan,
  );
  const plan = experimentPlan({
    stacks: ["local"],
    overrides: over,
    quick: false,
    plans,
    interleave: true,
  });
  return { plans, plan };
}

function runner(args: string[]) {
  return spawnSync(process.execPath, [BIN, "runner", ...args], {
    encoding: "utf8",
    timeout: 120_000,
  });
}

describe("inferbench runner", () => {
  it("refuses a missing, corrupt or foreign plan with exit 2 and the file's name", () => {
    const corrupt = join(dir, "corrupt.json");
    writeFileSync(corrupt, "{ not json");
    const stack = join(dir, "stackplan.json");
    writeFileSync(stack, JSON.stringify(planStack("local").plan));
    for (const [file, want] of [
      [join(dir, "missing.json"), /missing\.json does not exist/],
      [corrupt, /corrupt\.json: not valid JSON/],
      [stack, /stackplan\.json: not an inferbench experiment plan/],
    ] as const) {
      const r = runner(["--plan", file, "--arm", "managed", "--out", join(dir, "o")]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, want);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    }
  });

  it("measures the arm's steps of a bound plan and writes point.json last; --resume skips them", async () => {
    const over = [
      "workload.loadPoints=[{concurrency: 2}]",
      "workload.requestCount=6",
      "workload.outputTokensMean=8",
      "workload.outputTokensStddev=0",
      "run.warmupRequests=1",
      "models=[{name: llama-3.1-8b, hfPath: meta-llama/Llama-3.1-8B-Instruct, replicas: 1, profile: llama-3.1-8b@h100}]",
      "gpus.count=1",
    ];
    const { plans, plan } = localPlan(over);
    const d = await launchLocal(plans[1]!, { dir, log: createLogger("t", () => {}) });
    try {
      const file = join(dir, "plan.json");
      const bound = {
        ...plan,
        endpoints: { managed: { router: d.routerUrl, engines: d.engineUrls } },
      };
      writeFileSync(file, JSON.stringify(bound));
      const out = join(dir, "run");
      // Not bound for baseline: refused, naming the arm.
      const unbound = runner(["--plan", file, "--arm", "baseline", "--out", out]);
      assert.equal(unbound.status, 2);
      assert.match(unbound.stderr, /no endpoints for arm "baseline"/);
      const r = runner(["--plan", file, "--arm", "managed", "--out", out]);
      const point = JSON.parse(
        readFileSync(join(out, "managed/points/concurrency2/point.json"), "utf8"),
      );
      // On a loaded machine the generator's own lag may mark the point INVALID (exit 3): the exit
      // code must say which, and nothing but that lag may be the reason.
      assert.equal(r.status, point.valid ? 0 : RUNNER_SOME_INVALID, r.stderr);
      if (!point.valid)
        for (const why of point.invalidReasons as string[])
          assert.match(why, /generator fell behind/, r.stderr);
      assert.equal(point.requestCount, 6);
      assert.equal(point.seed, plan.steps.find((s) => s.arm === "managed")!.seed);
      assert.ok(existsSync(join(out, "managed/points/concurrency2/server-metrics.json")));
      // Again without --resume: refused, nothing overwritten; with it: nothing to do.
      const again = runner(["--plan", file, "--arm", "managed", "--out", out]);
      assert.equal(again.status, 2);
      assert.match(again.stderr, /already holds a completed point/);
      const resumed = runner(["--plan", file, "--arm", "managed", "--out", out, "--resume"]);
      assert.equal(resumed.status, 0, resumed.stderr);
      assert.match(resumed.stderr, /0 point\(s\) measured, 1 already complete/);
    } finally {
      await d.stop();
    }
  });

  it("two shards as two processes send one schedule and shard 0 writes one merged point; a missing shard fails the step", async () => {
    const over = [
      "workload.loadPoints=[{concurrency: 4}]",
      "workload.requestCount=20",
      "workload.outputTokensMean=8",
      "workload.outputTokensStddev=0",
      "run.warmupRequests=2",
      "models=[{name: llama-3.1-8b, hfPath: meta-llama/Llama-3.1-8B-Instruct, replicas: 1, profile: llama-3.1-8b@h100}]",
      "gpus.count=1",
    ];
    const { plans, plan } = localPlan(over);
    const d = await launchLocal(plans[0]!, { dir, log: createLogger("t", () => {}) });
    try {
      const file = join(dir, "plan-shards.json");
      writeFileSync(
        file,
        JSON.stringify({
          ...plan,
          endpoints: { baseline: { router: d.routerUrl, engines: d.engineUrls } },
        }),
      );
      const [port] = await freePorts(1);
      const coordinator = `http://127.0.0.1:${port}`;
      const base = ["--plan", file, "--arm", "baseline", "--coordinator", coordinator];
      const out = join(dir, "run-shards");
      // The follower may start first: it waits for shard 0 to come up.
      const [follower, lead] = await Promise.all([
        runnerAsync([...base, "--shard", "1/2", "--out", join(dir, "unused")]),
        new Promise((r) => setTimeout(r, 300)).then(() =>
          runnerAsync([...base, "--shard", "0/2", "--out", out]),
        ),
      ]);
      assert.equal(follower.status, 0, follower.stderr);
      assert.match(follower.stderr, /shard 1\/2: sent 1 share\(s\) to shard 0/);
      assert.ok([0, RUNNER_SOME_INVALID].includes(lead.status!), lead.stderr);
      const point = JSON.parse(
        readFileSync(join(out, "baseline/points/concurrency4/point.json"), "utf8"),
      );
      assert.equal(point.requestCount, 20, "both shares in one point");
      assert.equal(point.errorCount, 0);
      const runDir = join(out, point.artifactDir);
      const records = readFileSync(join(runDir, "profile_export_inferbench_requests.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { index: number });
      assert.deepEqual(
        records.map((r) => r.index),
        Array.from({ length: 20 }, (_, i) => i),
      );
      assert.ok(!existsSync(join(dir, "unused", "baseline")), "a follower writes nothing");
      // Shard 0 whose followers never come fails the step, naming them.
      const [lonelyPort] = await freePorts(1);
      const r = await runnerAsync([
        "--plan",
        file,
        "--arm",
        "baseline",
        "--out",
        join(dir, "run-lonely"),
        "--shard",
        "0/3",
        "--coordinator",
        `http://127.0.0.1:${lonelyPort}`,
        "--ready-timeout",
        "2",
      ]);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /shard\(s\) 1, 2 not ready for step \d+ after 2 s/);
      // A follower started with another plan is refused by shard 0 (its share would be merged).
      const other = join(dir, "plan-other.json");
      writeFileSync(
        other,
        JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), overrides: ["changed"] }),
      );
      const [otherPort] = await freePorts(1);
      const url = `http://127.0.0.1:${otherPort}`;
      const [stranger] = await Promise.all([
        runnerAsync([
          "--plan",
          other,
          "--arm",
          "baseline",
          "--out",
          join(dir, "o2"),
          "--shard",
          "1/2",
          "--coordinator",
          url,
          "--ready-timeout",
          "5",
        ]),
        runnerAsync([
          "--plan",
          file,
          "--arm",
          "baseline",
          "--out",
          join(dir, "o3"),
          "--shard",
          "0/2",
          "--coordinator",
          url,
          "--ready-timeout",
          "3",
        ]),
      ]);
      assert.equal(stranger.status, 2, stranger.stderr);
      assert.match(stranger.stderr, /started with another plan\.json than shard 0/);
      const bad = runner([
        "--plan",
        file,
        "--arm",
        "baseline",
        "--out",
        join(dir, "x"),
        "--shard",
        "3/2",
      ]);
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /--shard: "3\/2" is not K\/N/);
    } finally {
      await d.stop();
    }
  });
});

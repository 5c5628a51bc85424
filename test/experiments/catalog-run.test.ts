/**
 * Catalog runs: the snapshot diff (pure), and `inferbench experiment run` as one resumable unit —
 * interrupted with SIGINT, refused on resume once the catalog changed (with the diff), resumed
 * to completion once it is back, and a finished run resumed again runs nothing.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type CatalogRunRecord, lineDiff, snapshotChanges } from "../../experiments/catalog-run.ts";

describe("catalog run snapshots (pure)", () => {
  it("lineDiff shows the changed lines with a line of context, nothing for equal texts", () => {
    const a = '{\n  "a": 1,\n  "b": 2,\n  "c": 3\n}\n';
    assert.deepEqual(lineDiff(a, a), []);
    assert.deepEqual(lineDiff(a, a.replace('"b": 2', '"b": 5')), [
      "@@ line 3 @@",
      '    "a": 1,',
      '-   "b": 2,',
      '+   "b": 5,',
    ]);
    // Two regions far apart are two hunks, not one block between them.
    const lines = Array.from({ length: 40 }, (_, i) => `l${i}`);
    const changed = [...lines];
    changed[2] = "L2";
    changed[35] = "L35";
    assert.deepEqual(lineDiff(lines.join("\n"), changed.join("\n")), [
      "@@ line 3 @@",
      "  l1",
      "- l2",
      "+ L2",
      "@@ line 36 @@",
      "  l34",
      "- l35",
      "+ L35",
    ]);
    const long = Array.from({ length: 30 }, (_, i) => `x${i}`).join("\n");
    const d = lineDiff("", long, 5);
    // 31 changes (the empty line out, 30 in): 5 shown, the rest counted.
    assert.equal(d.filter((l) => /^[-+] /.test(l)).length, 5);
    assert.match(d.at(-1)!, /^… 26 more changed line\(s\)$/);
  });
  it("names changed, missing, removed and new experiments", () => {
    const rec = {
      experiments: [
        { name: "same", status: "complete" },
        { name: "changed", status: "pending" },
        { name: "gone", status: "pending" },
        { name: "lost-snapshot", status: "pending" },
      ],
    } as CatalogRunRecord;
    const now = new Map([
      ["same", "x\n"],
      ["changed", "y2\n"],
      ["lost-snapshot", "z\n"],
      ["added", "w\n"],
    ]);
    const stored: Record<string, string> = { same: "x\n", changed: "y1\n", gone: "g\n" };
    const out = snapshotChanges(rec, now, (n) => stored[n]);
    assert.equal(out.length, 4);
    assert.match(
      out[0]!,
      /^changed: renders differently now:\n {4}@@ line 1 @@\n {4}- y1\n {4}\+ y2$/,
    );
    assert.match(out[1]!, /^gone: no longer in the file/);
    assert.match(
      out[2]!,
      /^lost-snapshot: its snapshot lost-snapshot\/experiment\.json is missing/,
    );
    assert.match(out[3]!, /^added: new in the file since the run started/);
  });
});

describe("inferbench experiment run: one resumable catalog run", () => {
  const BIN = fileURLToPath(new URL("../../bin/inferbench.js", import.meta.url));
  const env = { ...process.env, HF_TOKEN: "" };
  const catalog = (bRequests: number) => `experiments:
  - name: tiny-a
    stacks: [local]
    config:
      models: [{name: llama-3.1-8b, hfPath: meta-llama/Llama-3.1-8B-Instruct, replicas: 1, profile: llama-3.1-8b@h100}]
      gpus: {count: 1}
      workload: {requestCount: 40, outputTokensMean: 8, outputTokensStddev: 0, loadPoints: [{concurrency: 1}, {concurrency: 2}]}
      run: {warmupRequests: 0}
      engine: {emulatorStartupDelaySec: 0}
  - name: tiny-b
    extends: tiny-a
    config:
      workload: {requestCount: ${bRequests}, loadPoints: [{concurrency: 2}]}
`;
  const record = (dir: string): CatalogRunRecord =>
    JSON.parse(readFileSync(join(dir, "catalog-run.json"), "utf8"));
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [BIN, "experiment", ...args], {
      encoding: "utf8",
      timeout: 300_000,
      env,
    });
  /** A point.json anywhere under a run folder of this catalog run's experiments. */
  const anyPoint = (runs: string) =>
    readdirSync(runs, { recursive: true }).some((f) => String(f).endsWith("point.json"));

  it("SIGINT → resume refused while the catalog differs (diff shown) → resumed to completion → nothing left to run", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ib-catalog-run-"));
    try {
      const file = join(dir, "tiny.yaml");
      const runs = join(dir, "runs");
      writeFileSync(file, catalog(4));
      // 1. Interrupted once a first point is home.
      const proc = spawn(process.execPath, [BIN, "experiment", "run", file, "--runs-dir", runs], {
        stdio: ["ignore", "pipe", "pipe"],
        env,
      });
      let stdout = "";
      let stderr = "";
      proc.stdout!.on("data", (d) => (stdout += d));
      proc.stderr!.on("data", (d) => (stderr += d));
      const code = new Promise<number | null>((r) => proc.on("close", r));
      const t0 = Date.now();
      while (!(existsSync(runs) && anyPoint(runs))) {
        assert.ok(Date.now() - t0 < 120_000, `no point after 120 s: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      proc.kill("SIGINT");
      assert.equal(await code, 130, stderr);
      const id = /^catalog run (\S+): (\S+)$/m.exec(stdout)!;
      const cdir = id[2]!;
      assert.ok(existsSync(join(cdir, "tiny-a", "experiment.json")), "snapshots written first");
      assert.ok(existsSync(join(cdir, "tiny-b", "experiment.json")));
      const r1 = record(cdir);
      const stopped = r1.experiments.findIndex((x) => x.status === "interrupted");
      assert.ok(stopped >= 0, JSON.stringify(r1));
      assert.ok(r1.experiments[stopped]!.runId, "the interrupted experiment's run is recorded");
      for (const x of r1.experiments.slice(stopped + 1)) assert.equal(x.status, "pending");
      assert.match(stdout, new RegExp(`--resume ${id[1]}`));

      // 2. The catalog changed: the resume is refused with the diff, and nothing runs.
      writeFileSync(file, catalog(5));
      const refused = cli(["run", file, "--resume", id[1]!, "--runs-dir", runs]);
      assert.equal(refused.status, 2, refused.stderr);
      assert.match(refused.stderr, /tiny-b: renders differently now:/);
      assert.match(refused.stderr, /- +"requestCount": 4,/);
      assert.match(refused.stderr, /\+ +"requestCount": 5,/);
      assert.doesNotMatch(refused.stderr, /tiny-a: renders/);
      assert.deepEqual(
        record(cdir).experiments,
        r1.experiments,
        "a refused resume changes nothing",
      );
      const own = cli(["run", file, "--resume", id[1]!, "--quick", "--runs-dir", runs]);
      assert.equal(own.status, 2);
      assert.match(own.stderr, /--resume takes the run's own --filter, --set and --quick/);

      // 3. Back as it was: the interrupted one resumes from its points, the rest run.
      writeFileSync(file, catalog(4));
      const resumed = cli(["run", file, "--resume", id[1]!, "--runs-dir", runs]);
      assert.ok([0, 3].includes(resumed.status!), resumed.stderr);
      const r2 = record(cdir);
      assert.ok(
        r2.experiments.every((x) => x.status === "complete" || x.status === "invalid"),
        JSON.stringify(r2),
      );
      assert.equal(
        r2.experiments[stopped]!.runId,
        r1.experiments[stopped]!.runId,
        "resumed in its own run, not a new one",
      );
      assert.match(resumed.stderr, /resuming run /);
      // 4. Finished: a resume runs nothing.
      const again = cli(["run", file, "--resume", id[1]!, "--runs-dir", runs]);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, /^tiny-a: (ok|some points INVALID), run \S+ \(done before\)$/m);
      assert.match(again.stdout, /^tiny-b: (ok|some points INVALID), run \S+ \(done before\)$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

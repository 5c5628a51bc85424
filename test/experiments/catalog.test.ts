/**
 * The experiment catalog: inheritance, matrix expansion, and refusals that point at the line
 * that set the value; every shipped catalog file expands and checks against its stacks.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  CatalogError,
  combinations,
  deepMerge,
  expandCatalog,
  loadCatalog,
} from "../../experiments/catalog.ts";

const DIR = fileURLToPath(new URL("../../experiments/", import.meta.url));

const refusal = (text: string): string => {
  try {
    expandCatalog(text, "t.yaml");
  } catch (err) {
    assert.ok(err instanceof CatalogError, String(err));
    return err.message;
  }
  assert.fail("accepted");
};

describe("experiment catalog", () => {
  it("every shipped catalog file expands and checks against its stacks", () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith(".yaml"));
    assert.ok(files.length > 0);
    for (const f of files) {
      const xs = loadCatalog(join(DIR, f));
      assert.ok(xs.length > 0, f);
      for (const x of xs) assert.ok(x.stacks.length > 0, `${f}: ${x.name}`);
    }
    const names = loadCatalog(join(DIR, "studies.yaml")).map((x) => x.name);
    assert.deepEqual(names, [
      "embedded",
      "embedded-long-prompts",
      "embedded-load-loadpoints-0",
      "embedded-load-loadpoints-1",
      "embedded-load-loadpoints-2",
      "embedded-auto-rates",
      "prefix-routing-managed-prefix-aware",
      "prefix-routing-managed-least-busy",
      "router-study-managed-power-of-two",
      "router-study-managed-prefix-aware",
      "kvcached-pair",
    ]);
  });

  it("autoRates: checked with defaults filled, inherited by extends, refused at its line", () => {
    const xs = expandCatalog(
      `experiments:
  - name: base
    stacks: [local]
    autoRates: {fractions: [0.5, 1], probeConcurrency: 8, probeRequests: 16}
  - name: child
    extends: base
`,
      "t.yaml",
    );
    for (const x of xs)
      assert.deepEqual(x.autoRates, {
        fractions: [0.5, 1],
        distribution: "poisson",
        probeConcurrency: 8,
        probeRequests: 16,
      });
    const msg = refusal(`experiments:
  - name: bad
    stacks: [local]
    autoRates: {fractions: [0, 1]}
`);
    assert.match(
      msg,
      /t\.yaml:4:\d+: experiments\[0\]\.autoRates: auto rates: fraction 0 is not in \(0, 2\]/,
    );
  });

  it("extends deep-merges mappings, replaces lists, and does not inherit a matrix", () => {
    const xs = expandCatalog(
      `experiments:
  - name: base
    stacks: [local]
    quick: true
    config:
      workload: {requestCount: 40, loadPoints: [{concurrency: 2}, {concurrency: 4}]}
    matrix:
      run.seed: [1, 2]
  - name: child
    extends: base
    config:
      workload: {loadPoints: [{concurrency: 8}]}
      run: {repeats: 2}
`,
      "t.yaml",
    );
    assert.deepEqual(
      xs.map((x) => x.name),
      ["base-seed-1", "base-seed-2", "child"],
    );
    const child = xs.find((x) => x.name === "child")!;
    assert.deepEqual(child.stacks, ["local"]);
    assert.equal(child.quick, true);
    assert.deepEqual(child.extends, ["base"]);
    assert.deepEqual(child.overrides, [
      "run.repeats=2",
      'workload.loadPoints=[{"concurrency":8}]',
      "workload.requestCount=40",
    ]);
    assert.ok(xs[0]!.overrides.includes("run.seed=1"));
  });

  it("matrix: every combination, in factor order", () => {
    assert.deepEqual(combinations({ a: [1, 2], b: ["x", "y"] }), [
      { a: 1, b: "x" },
      { a: 1, b: "y" },
      { a: 2, b: "x" },
      { a: 2, b: "y" },
    ]);
    assert.deepEqual(deepMerge({ a: { b: 1, c: [1] } }, { a: { c: [2] } }), {
      a: { b: 1, c: [2] },
    });
  });

  it("refuses cycles, unknown bases, duplicate names and unknown keys, with file:line", () => {
    assert.match(
      refusal(
        "experiments:\n  - {name: a, extends: b, stacks: [local]}\n  - {name: b, extends: a}\n",
      ),
      /t\.yaml:2:\d+: experiments\[0\]\.extends: extends cycle: a → b → a/,
    );
    assert.match(
      refusal(
        "experiments:\n  - name: a\n    stacks: [local]\n    extends: bse\n  - name: base\n    stacks: [local]\n",
      ),
      /t\.yaml:4:5: experiments\[0\]\.extends: no experiment "bse" in this file \(did you mean "base"\?\)/,
    );
    assert.match(
      refusal("experiments:\n  - {name: a, stacks: [local]}\n  - {name: a, stacks: [local]}\n"),
      /t\.yaml:3:\d+: experiments\[1\]\.name: duplicate name "a" \(first at t\.yaml:2:\d+\)/,
    );
    assert.match(
      refusal("experiments:\n  - name: a\n    stacks: [local]\n    confg: {}\n"),
      /t\.yaml:4:5: experiments\[0\]\.confg: unknown key "confg" \(did you mean "config"\?\)/,
    );
    assert.match(refusal("experiment: []\n"), /unknown top-level key "experiment"/);
    const secret = refusal(
      "experiments:\n  - name: a\n    stacks: [local]\n    config:\n      hfToken: hf_abcdefghijklmnopqrstuvwxyz0123\n",
    );
    assert.match(
      secret,
      /t\.yaml:5:7: experiments\[0\]\.config\.hfToken: a secret does not go in a catalog/,
    );
    assert.doesNotMatch(secret, /hf_abcdefghij/, "the value is never shown");
    assert.match(refusal("experiments:\n  - {name: a}\n"), /names no stacks/);
    const ten = `[${Array.from({ length: 10 }, (_, k) => k + 1).join(", ")}]`;
    assert.match(
      refusal(
        `experiments:\n  - name: a\n    stacks: [local]\n    matrix:\n      run.seed: ${ten}\n      run.repeats: ${ten}\n      workload.requestCount: ${ten}\n`,
      ),
      /t\.yaml:4:5: experiments\[0\]\.matrix: 1000 combinations; at most 500/,
    );
  });

  it("a value the stack schema refuses points at the catalog line that set it, even inherited", () => {
    const msg = refusal(`experiments:
  - name: base
    stacks: [local]
    config:
      workload:
        requestCount: -3
  - name: child
    extends: base
    matrix:
      router.policy: [round-robin, teleport]
`);
    assert.match(msg, /t\.yaml:6:9: config\.workload\.requestCount: base \(stack local\): /);
    assert.match(msg, /t\.yaml:6:9: config\.workload\.requestCount: child-policy-round-robin/);
    assert.match(
      msg,
      /t\.yaml:10:7: config\.router\.policy: child-policy-teleport \(stack local\): /,
    );
  });
});

describe("inferbench experiment", () => {
  const BIN = fileURLToPath(new URL("../../bin/inferbench.js", import.meta.url));
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [BIN, "experiment", ...args], {
      encoding: "utf8",
      timeout: 300_000,
      env: { ...process.env, HF_TOKEN: "" },
    });

  it("lists what a file expands into; runs the ones --filter selects, each with its own run", () => {
    const dir = mkdtempSync(join(tmpdir(), "ib-catalog-"));
    try {
      const file = join(dir, "tiny.yaml");
      writeFileSync(
        file,
        `experiments:
  - name: tiny
    stacks: [local]
    config:
      models: [{name: llama-3.1-8b, hfPath: meta-llama/Llama-3.1-8B-Instruct, replicas: 1, profile: llama-3.1-8b@h100}]
      gpus: {count: 1}
      workload: {requestCount: 4, outputTokensMean: 8, outputTokensStddev: 0, loadPoints: [{concurrency: 1}]}
      run: {warmupRequests: 0}
      engine: {emulatorStartupDelaySec: 0}
  - name: tiny-big
    extends: tiny
    config:
      workload: {requestCount: 400}
`,
      );
      const list = cli(["list", file]);
      assert.equal(list.status, 0, list.stderr);
      assert.match(list.stdout, /^tiny-big \(extends tiny\): stacks local$/m);
      assert.match(list.stdout, /^ {2}--set workload\.requestCount=400$/m);
      const runs = join(dir, "runs");
      const r = cli(["run", file, "--filter", "^tiny$", "--runs-dir", runs]);
      // On a loaded machine the generator may lag (INVALID, exit 3): the run happened either way.
      assert.ok([0, 3].includes(r.status!), r.stderr);
      assert.match(r.stdout, /^tiny: (ok, run \d{8}-\d{6}-[0-9a-f]{4}|some points INVALID)$/m);
      assert.doesNotMatch(r.stdout, /tiny-big/, "--filter leaves the other out");
      // One run, and the catalog run that records it (experiments-<id>: snapshot + outcome).
      const entries = readdirSync(runs);
      assert.equal(entries.length, 2, entries.join(", "));
      const catalogRun = entries.find((e) => e.startsWith("experiments-"))!;
      assert.ok(catalogRun, entries.join(", "));
      assert.deepEqual(readdirSync(join(runs, catalogRun)).sort(), ["catalog-run.json", "tiny"]);
      // --dry-run: every rendered artifact of both arms, nothing started.
      const shipped = fileURLToPath(new URL("../../experiments/studies.yaml", import.meta.url));
      const dry = cli([
        "run",
        shipped,
        "--filter",
        "^kvcached-pair$",
        "--dry-run",
        "--runs-dir",
        join(dir, "dry"),
      ]);
      assert.equal(dry.status, 0, dry.stderr);
      const out = /nothing started: (\S+)/.exec(dry.stdout)![1]!;
      const files = readdirSync(out, { recursive: true }).map(String).sort();
      for (const f of [
        "kvcached-pair/experiment.json",
        "kvcached-pair/baseline/compose.yaml",
        "kvcached-pair/managed/compose.yaml",
        "kvcached-pair/managed/images/vllm-kvcached/Dockerfile",
        "kvcached-pair/managed/experiment.json",
      ])
        assert.ok(files.includes(f), `${f} in ${files.join(", ")}`);
      assert.deepEqual(readdirSync(join(dir, "dry")).length, 1, "only the dry-run folder");
      const none = cli(["run", file, "--filter", "nomatch", "--runs-dir", runs]);
      assert.equal(none.status, 2);
      assert.match(none.stderr, /no experiment of .* matches/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

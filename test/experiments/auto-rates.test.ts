/**
 * Auto request rates: the pure parts (fractions, saturation from a probe's comparison, the
 * sweep's rates and overrides) and `inferbench run --auto-rates` end to end on the embedded
 * default: a probe run, then a sweep run whose load points are the rates and whose manifest and
 * comparison say where they came from.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  autoRates,
  DEFAULT_FRACTIONS,
  parseFractions,
  probeOverrides,
  saturationOf,
  sweepOverrides,
  sweepRates,
} from "../../experiments/auto-rates.ts";
import type { Comparison, SideSummary } from "../../results/compare-types.ts";

const side = (achievedRps: number, valid = true) =>
  ({ achievedRps, valid, ...(valid ? {} : { invalidReason: "send lag" }) }) as SideSummary;
const comparison = (rows: [number, number, boolean?][]) =>
  ({
    labels: { a: "baseline", b: "managed" },
    rows: rows.map(([a, b, valid], i) => ({
      model: `m${i}`,
      a: side(a),
      b: side(b, valid ?? true),
    })),
  }) as unknown as Comparison;

describe("auto rates (pure)", () => {
  it("defaults to 10 % … 100 %; refuses fractions and probes that cannot work", () => {
    const a = autoRates();
    assert.deepEqual(a.fractions, DEFAULT_FRACTIONS);
    assert.equal(a.distribution, "poisson");
    assert.throws(() => autoRates({ fractions: [0] }), /fraction 0 is not in \(0, 2\]/);
    assert.throws(() => autoRates({ fractions: [] }), /1 to 100 fractions/);
    assert.throws(
      () => autoRates({ probeConcurrency: 64, probeRequests: 10 }),
      /at least as many requests \(10\) as its concurrency \(64\)/,
    );
    assert.deepEqual(parseFractions("0.25, 50%,1"), [0.25, 0.5, 1]);
    assert.throws(() => parseFractions("0.5,half"), /"half" is not a fraction/);
  });
  it("saturation is the higher arm's summed throughput; the sweep is fractions of it", () => {
    const a = autoRates({ fractions: [0.5, 1], probeConcurrency: 8, probeRequests: 16 });
    const p = saturationOf(
      comparison([
        [10, 12],
        [5, 2.5],
      ]),
      "r1",
      a,
    );
    assert.deepEqual(p.perArm, { baseline: 15, managed: 14.5 });
    assert.equal(p.saturationRps, 15);
    assert.deepEqual(sweepRates(p), [7.5, 15]);
    assert.deepEqual(sweepOverrides(p, a), [
      "workload.loadPoints=[{requestRate: 7.5, distribution: poisson}, {requestRate: 15, distribution: poisson}]",
      "workload.order=listed",
    ]);
    assert.deepEqual(probeOverrides(a), [
      "workload.loadPoints=[{concurrency: 8}]",
      "workload.requestCount=16",
      "workload.order=listed",
      "run.repeats=1",
    ]);
    assert.deepEqual(sweepRates({ ...p, saturationRps: 123.456, fractions: [1 / 3] }), [41.2]);
  });
  it("an INVALID or empty probe starts no sweep", () => {
    const a = autoRates();
    assert.throws(
      () => saturationOf(comparison([[10, 12, false]]), "r2", a),
      /probe \(run r2\) measured nothing to sweep from: managed m0: INVALID \(send lag\)/,
    );
    assert.throws(
      () => saturationOf(comparison([[0, 12]]), "r3", a),
      /baseline: no request completed/,
    );
  });
});

describe("inferbench run --auto-rates", () => {
  const BIN = fileURLToPath(new URL("../../bin/inferbench.js", import.meta.url));
  it("probes, then sweeps the fractions of the probed saturation in a second run that records the probe", () => {
    const runs = mkdtempSync(join(tmpdir(), "ib-auto-rates-"));
    try {
      const r = spawnSync(
        process.execPath,
        [
          BIN,
          "run",
          "--stack",
          "local",
          "--set",
          "models=[{name: llama-3.1-8b, hfPath: meta-llama/Llama-3.1-8B-Instruct, replicas: 1, profile: llama-3.1-8b@h100}]",
          "--set",
          "gpus.count=1",
          "--set",
          "workload.outputTokensMean=8",
          "--set",
          "workload.outputTokensStddev=0",
          "--set",
          "run.warmupRequests=1",
          "--set",
          "engine.emulatorStartupDelaySec=0",
          "--set",
          "workload.requestCount=12",
          "--auto-rates",
          "0.5,100%",
          "--probe-concurrency",
          "4",
          "--probe-requests",
          "12",
          "--runs-dir",
          runs,
        ],
        { encoding: "utf8", timeout: 300_000, env: { ...process.env, HF_TOKEN: "" } },
      );
      const ids = readdirSync(runs).sort();
      if (r.status !== 0 && /measured nothing to sweep from: .*INVALID/.test(r.stderr)) {
        // A loaded machine made the probe's generator lag: the honest outcome is no sweep.
        assert.equal(ids.length, 1, "an INVALID probe starts no sweep");
        return;
      }
      // On a loaded machine the generator may lag in the sweep (INVALID, exit 3): it ran either way.
      assert.ok([0, 3].includes(r.status!), r.stderr);
      assert.equal(ids.length, 2, ids.join(", "));
      const manifest = (id: string) =>
        JSON.parse(readFileSync(join(runs, id, "manifest.json"), "utf8"));
      const [probeRun, sweepRun] = ids.map(manifest);
      assert.equal(probeRun.probe, undefined);
      assert.ok(probeRun.command.overrides.includes("workload.loadPoints=[{concurrency: 4}]"));
      const probe = sweepRun.probe;
      assert.equal(probe.runId, ids[0]);
      assert.equal(probe.concurrency, 4);
      assert.ok(probe.saturationRps > 0);
      assert.equal(probe.saturationRps, Math.max(probe.perArm.baseline, probe.perArm.managed));
      // The sweep's points are the rates, as its plan holds them and its comparison shows them.
      const plan = JSON.parse(readFileSync(join(runs, ids[1]!, "plan.json"), "utf8"));
      const rates = plan.loadPoints.map((p: { requestRate: number }) => p.requestRate);
      assert.deepEqual(rates, sweepRates(probe));
      assert.equal(rates[1], Number(probe.saturationRps.toPrecision(3)));
      const c = JSON.parse(readFileSync(join(runs, ids[1]!, "comparison.json"), "utf8"));
      assert.ok(
        c.notes.some((n: string) =>
          /^Request rates are fractions \(50 %, 100 %\) of the probed saturation/.test(n),
        ),
        c.notes.join("\n"),
      );
      assert.match(
        r.stderr,
        /auto rates: saturation [\d.]+ req\/s .*; sweeping [\d.]+, [\d.]+ req\/s/,
      );
    } finally {
      rmSync(runs, { recursive: true, force: true });
    }
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "../../lib/random.ts";
import { bootstrapDelta, EXACT_LIMIT, repeatsDelta } from "../../results/bootstrap.ts";
import {
  compareSides,
  comparisonCsv,
  type PointData,
  type RequestSample,
  type SideData,
  verdictOf,
} from "../../results/compare.ts";

function lognormal(rng: () => number, median: number, sigma: number): number {
  const u = Math.max(1e-12, rng());
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
  return median * Math.exp(sigma * z);
}

function samples(
  n: number,
  ttftMedian: number,
  seed: number,
  opts: { errors?: number; repeat?: number } = {},
): RequestSample[] {
  const rng = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const ttft = lognormal(rng, ttftMedian, 0.4);
    const start = i * 100;
    return {
      ok: i >= (opts.errors ?? 0),
      startMs: start,
      endMs: start + ttft + 500,
      ttftMs: ttft,
      itlMs: 10,
      osl: 50,
      backend: `e-${i % 2}`,
      repeat: opts.repeat ?? 0,
    };
  });
}

function side(
  label: string,
  points: PointData[],
  workload: SideData["workload"] = { dataset: "synthetic" },
): SideData {
  return { label, source: label, emulated: true, slo: { ttftMs: 120 }, workload, points };
}

const point = (s: RequestSample[], extra: Partial<PointData> = {}): PointData => ({
  model: "m",
  point: "concurrency 4",
  pointKind: "concurrency",
  pointValue: 4,
  samples: s,
  repeats: 1,
  valid: true,
  ...extra,
});

describe("bootstrap intervals", () => {
  it("cover a real 30% TTFT reduction and call it better; identical distributions are within noise", () => {
    const a = samples(400, 100, 1).map((s) => s.ttftMs!);
    const b = samples(400, 70, 2).map((s) => s.ttftMs!);
    const d = bootstrapDelta(a, b, { kind: "quantile", p: 50 });
    assert.ok(
      d.lowPct < -30 && d.highPct > -30 ? true : Math.abs(d.deltaPct + 30) < 10,
      JSON.stringify(d),
    );
    assert.equal(verdictOf(d.lowPct, d.highPct, "lower"), "better");
    const same = bootstrapDelta(
      a,
      samples(400, 100, 3).map((s) => s.ttftMs!),
      { kind: "quantile", p: 50 },
    );
    assert.equal(verdictOf(same.lowPct, same.highPct, "lower"), "within noise");
  });

  it("the large-sample path agrees with resampling", () => {
    const n = EXACT_LIMIT + 1000;
    const a = samples(n, 100, 4).map((s) => s.ttftMs!);
    const b = samples(n, 90, 5).map((s) => s.ttftMs!);
    const fast = bootstrapDelta(a, b, { kind: "quantile", p: 90 });
    const exactA = a.slice(0, EXACT_LIMIT);
    const exactB = b.slice(0, EXACT_LIMIT);
    const exact = bootstrapDelta(exactA, exactB, { kind: "quantile", p: 90 });
    assert.match(fast.method, /order-statistic/);
    assert.match(exact.method, /resampling/);
    const width = (d: typeof fast) => d.highPct - d.lowPct;
    assert.ok(
      Math.abs(width(fast) - width(exact)) < width(exact),
      `${width(fast)} vs ${width(exact)}`,
    );
    const mean = bootstrapDelta(a, b, { kind: "mean" });
    assert.ok(mean.lowPct < mean.deltaPct && mean.deltaPct < mean.highPct);
  });

  it("is deterministic for a seed", () => {
    const a = samples(100, 100, 6).map((s) => s.ttftMs!);
    const b = samples(100, 80, 7).map((s) => s.ttftMs!);
    assert.deepEqual(
      bootstrapDelta(a, b, { kind: "quantile", p: 99 }, 3),
      bootstrapDelta(a, b, { kind: "quantile", p: 99 }, 3),
    );
  });

  it("repeats: a t interval over per-repeat deltas", () => {
    const d = repeatsDelta([100, 102, 98], [80, 83, 79]);
    assert.ok(d.highPct < 0);
    assert.match(d.method, /t interval over 3 repeats/);
  });

  it("verdicts by direction", () => {
    assert.equal(verdictOf(-20, -5, "lower"), "better");
    assert.equal(verdictOf(5, 20, "lower"), "worse");
    assert.equal(verdictOf(5, 20, "higher"), "better");
    assert.equal(verdictOf(-5, 20, "higher"), "within noise");
    assert.equal(verdictOf(Number.NaN, Number.NaN, "higher"), "n/a");
  });
});

describe("compareSides", () => {
  it("counts failed requests as errors and keeps them out of latency statistics", () => {
    const a = point(samples(50, 100, 8, { errors: 5 }));
    const b = point(samples(50, 100, 9));
    const c = compareSides(side("baseline", [a]), side("managed", [b]));
    const row = c.rows[0]!;
    assert.equal(row.a.errors, 5);
    assert.equal(row.a.requests, 50);
    assert.equal(row.a.errorRate, 0.1);
    const okTtfts = a.samples.filter((s) => s.ok).map((s) => s.ttftMs!);
    assert.ok(row.a.ttftMs!.mean - okTtfts.reduce((t, x) => t + x, 0) / okTtfts.length < 1e-9);
    assert.ok(row.deltas.some((d) => d.metric === "error_rate" && d.a === 10 && d.b === 0));
    assert.deepEqual(row.a.server.replicaShare, { "e-0": 22 / 45, "e-1": 23 / 45 });
    assert.ok(
      row.a.goodputRps! < row.a.achievedRps,
      "goodput counts only requests within the TTFT SLO",
    );
  });

  it("refuses different workloads unless forced, and says what differs", () => {
    const a = side("baseline", [point(samples(10, 100, 1))], { dataset: "synthetic", seed: 0 });
    const b = side("managed", [point(samples(10, 100, 2))], { dataset: "sharegpt", seed: 0 });
    assert.throws(
      () => compareSides(a, b),
      /workloads differ:\n {2}dataset: "synthetic" vs "sharegpt"/,
    );
    const forced = compareSides(a, b, { force: true });
    assert.ok(forced.notes[0]!.includes("--force"));
  });

  it("invalid points are marked and get no deltas", () => {
    const c = compareSides(
      side("baseline", [
        point(samples(20, 100, 1), { valid: false, invalidReason: "lag p99 9 ms > 2 ms" }),
      ]),
      side("managed", [point(samples(20, 100, 2))]),
    );
    assert.equal(c.rows[0]!.deltas.length, 0);
    assert.ok(c.notes.some((n) => /INVALID \(baseline: lag p99 9 ms > 2 ms\)/.test(n)));
  });

  it("says plainly when B does not win, and exports CSV", () => {
    const c = compareSides(
      side("baseline", [point(samples(300, 100, 1))]),
      side("managed", [point(samples(300, 100, 2))]),
    );
    assert.ok(
      c.notes.some((n) => /managed does not beat baseline on TTFT p99/.test(n)),
      c.notes.join("\n"),
    );
    const csv = comparisonCsv(c);
    assert.match(csv.split("\n")[0]!, /^model,point,metric,unit,baseline,managed,delta_pct/);
    assert.ok(csv.includes("m,concurrency 4,ttft_p99_ms,ms,"));
  });
});

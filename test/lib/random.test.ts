import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRng, seededRandom } from "../../lib/random.ts";

const draw = (f: () => number, n: number) => Array.from({ length: n }, f);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const variance = (xs: number[]) => {
  const m = mean(xs);
  return mean(xs.map((x) => (x - m) ** 2));
};

describe("seeded random (lib/random.ts, xoshiro128**)", () => {
  it("one seed, one stream: repeatable, seeds differ, seededRandom is the same stream", () => {
    const a = draw(createRng(42).next, 50);
    assert.deepEqual(draw(createRng(42).next, 50), a);
    assert.deepEqual(draw(seededRandom(42), 50), a);
    assert.notDeepEqual(draw(createRng(43).next, 50), a);
    // Nearby seeds are decorrelated by splitmix32: their first draws are not close.
    const firsts = draw(
      (() => {
        let s = 0;
        return () => createRng(s++).next();
      })(),
      1000,
    );
    assert.ok(Math.abs(mean(firsts) - 0.5) < 0.03, `mean of first draws ${mean(firsts)}`);
  });

  it("next() is uniform on [0, 1) (10-bin chi-square, 100k draws)", () => {
    const xs = draw(createRng(7).next, 100_000);
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const bins = new Array<number>(10).fill(0);
    for (const x of xs) bins[Math.floor(x * 10)]!++;
    const chi2 = bins.reduce((s, o) => s + (o - 10_000) ** 2 / 10_000, 0);
    assert.ok(chi2 < 27.9, `chi-square ${chi2} (9 df, p = 0.001 critical value 27.9)`); // df 9
  });

  it("int, gauss, exponential, gamma and weibull have the right range and moments", () => {
    const r = createRng(11);
    const ints = draw(() => r.int(6), 60_000);
    assert.ok(ints.every((i) => Number.isInteger(i) && i >= 0 && i < 6));
    assert.equal(new Set(ints).size, 6);
    const g = draw(() => r.gauss(10, 2), 50_000);
    assert.ok(Math.abs(mean(g) - 10) < 0.05 && Math.abs(Math.sqrt(variance(g)) - 2) < 0.05);
    assert.equal(r.gauss(3, 0), 3);
    const e = draw(() => r.exponential(4), 50_000);
    assert.ok(e.every((x) => x >= 0) && Math.abs(mean(e) - 0.25) < 0.01);
    for (const [k, theta] of [
      [0.5, 2],
      [3, 1.5],
    ] as const) {
      const xs = draw(() => r.gamma(k, theta), 50_000);
      assert.ok(
        Math.abs(mean(xs) / (k * theta) - 1) < 0.03,
        `gamma(${k}, ${theta}) mean ${mean(xs)}`,
      );
      assert.ok(Math.abs(variance(xs) / (k * theta * theta) - 1) < 0.08);
    }
    // Weibull(shape 1, scale λ) is exponential with mean λ.
    assert.ok(Math.abs(mean(draw(() => r.weibull(1, 3), 50_000)) / 3 - 1) < 0.03);
  });

  it("shuffle permutes in place, reproducibly", () => {
    const xs = Array.from({ length: 20 }, (_, i) => i);
    const a = createRng(5).shuffle([...xs]);
    assert.deepEqual(
      [...a].sort((x, y) => x - y),
      xs,
    );
    assert.notDeepEqual(a, xs);
    assert.deepEqual(createRng(5).shuffle([...xs]), a);
  });
});

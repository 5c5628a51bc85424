import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { percentile, percentileSorted, quantileSorted } from "../../lib/percentile.ts";

describe("percentile (numpy.percentile, method='linear')", () => {
  it("gives numpy's values", () => {
    // numpy's own tests: x = arange(8) * 0.5 → p0 0, p100 3.5, p50 1.75.
    const x = [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5];
    assert.equal(percentile(x, 0), 0);
    assert.equal(percentile(x, 100), 3.5);
    assert.equal(percentile(x, 50), 1.75);
    // numpy docs: np.percentile([[10, 7, 4], [3, 2, 1]], 50) → 3.5.
    assert.equal(percentile([10, 7, 4, 3, 2, 1], 50), 3.5);
    assert.equal(percentile([1, 2, 3, 4], 25), 1.75);
    // γ = 0.97 ≥ 0.5: numpy's _lerp computes from the upper neighbour, b − (b−a)(1−γ).
    assert.equal(percentile([1, 2, 3, 4], 99), 3.9699999999999998);
    assert.equal(percentile([5], 90), 5);
  });

  it("uses the upper-neighbour form for γ ≥ 0.5 (monotonic where a + (b−a)γ is not)", () => {
    // Neighbours 0 and 0.1 at γ = 0.7: a + (b−a)γ rounds to 0.06999999999999999, numpy's
    // b − (b−a)(1−γ) gives 0.07, and so must we.
    const s = [0, 0.1];
    assert.equal(0 + 0.1 * 0.7, 0.06999999999999999);
    assert.equal(percentileSorted(s, 70), 0.07);
    assert.equal(percentileSorted(s, 30), 0.03);
  });

  it("quantile and percentile are the same definition on two scales", () => {
    const s = [1, 4, 9, 16, 25];
    for (const p of [0, 12.5, 50, 90, 99, 100]) {
      assert.equal(quantileSorted(s, p / 100), percentileSorted(s, p));
    }
  });

  it("is bounded by the sample and monotonic in p (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1e9, max: 1e9, noNaN: true }), { minLength: 1, maxLength: 40 }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        (xs, p, q) => {
          const sorted = [...xs].sort((a, b) => a - b);
          const [lo, hi] = p <= q ? [p, q] : [q, p];
          const a = percentileSorted(sorted, lo);
          const b = percentileSorted(sorted, hi);
          return a >= sorted[0]! && b <= sorted[sorted.length - 1]! && a <= b;
        },
      ),
    );
  });

  it("does not reorder its input; empty gives NaN; p outside [0, 100] is an error", () => {
    const xs = [3, 1, 2];
    assert.equal(percentile(xs, 50), 2);
    assert.deepEqual(xs, [3, 1, 2]);
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.throws(() => percentile([1], 101), RangeError);
    assert.throws(() => percentile([1], -1), RangeError);
    assert.throws(() => percentile([1], Number.NaN), RangeError);
    assert.throws(() => quantileSorted([1], 1.5), /outside \[0, 1\]/);
  });
});

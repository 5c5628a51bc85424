import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { SlicedQueue } from "../../services/engine-sim/sliced.ts";

/** A queue on a fake clock: each job advances it by its cost; deferred slices run on demand. */
function fake(sliceMs: number) {
  let t = 0;
  const pending: (() => void)[] = [];
  const q = new SlicedQueue(
    sliceMs,
    () => t,
    (fn) => pending.push(fn),
  );
  return {
    q,
    advance: (ms: number) => {
      t += ms;
    },
    /** Run one deferred slice; false when none is scheduled. */
    slice: () => {
      const fn = pending.shift();
      if (!fn) return false;
      fn();
      return true;
    },
    pending: () => pending.length,
  };
}

describe("SlicedQueue", () => {
  it("starts no job while held off, and resumes once the holdoff clears", () => {
    let hold = true;
    const pending: (() => void)[] = [];
    const q = new SlicedQueue(
      1,
      () => 0,
      (fn) => pending.push(fn),
      () => hold,
    );
    const ran: number[] = [];
    q.push(() => ran.push(1));
    q.push(() => ran.push(2));
    for (let i = 0; i < 3; i++) pending.shift()!();
    assert.deepEqual(ran, []);
    assert.equal(pending.length, 1); // still scheduled
    hold = false;
    pending.shift()!();
    assert.deepEqual(ran, [1, 2]);
    assert.equal(pending.length, 0);
  });

  it("runs every job once, in FIFO order, never more than one job past the slice budget", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 2, noNaN: true }), { maxLength: 200 }),
        fc.double({ min: 0.1, max: 3, noNaN: true }),
        (costs, sliceMs) => {
          const f = fake(sliceMs);
          const ran: number[] = [];
          for (const [i, c] of costs.entries())
            f.q.push(() => {
              ran.push(i);
              f.advance(c);
            });
          let slices = 0;
          let start = ran.length;
          while (f.slice()) {
            slices++;
            // Within one slice: all jobs but the last started before the budget ran out.
            const done = ran.slice(start);
            assert.ok(done.length >= 1);
            let used = 0;
            for (const i of done.slice(0, -1)) used += costs[i]!;
            assert.ok(used < sliceMs + 1e-9);
            start = ran.length;
            assert.ok(f.pending() <= 1);
          }
          assert.deepEqual(
            ran,
            costs.map((_, i) => i),
          );
          assert.equal(f.q.length, 0);
          if (costs.length > 0) assert.ok(slices >= 1);
        },
      ),
    );
  });

  it("a job pushed while idle schedules exactly one slice; a throwing job does not stall the rest", () => {
    const f = fake(1);
    const ran: string[] = [];
    f.q.push(() => {
      throw new Error("boom");
    });
    f.q.push(() => ran.push("b"));
    assert.equal(f.pending(), 1);
    assert.throws(() => f.slice(), /boom/);
    while (f.slice());
    assert.deepEqual(ran, ["b"]);
    f.q.push(() => ran.push("c"));
    assert.equal(f.pending(), 1);
    f.slice();
    assert.deepEqual(ran, ["b", "c"]);
  });
});

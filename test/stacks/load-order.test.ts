/** workload.order: the points run as listed, by load, or shuffled by the seed; a descending sweep is noted. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { compareSides } from "../../results/compare.ts";
import { isDescendingSweep, loadValue, orderLoadPoints } from "../../stacks/load-point.ts";
import type { LoadPoint } from "../../stacks/plan-types.ts";
import { planStack } from "../../targets/plan-stack.ts";

const conc = (c: number): LoadPoint => ({ kind: "concurrency", concurrency: c });

describe("load point order", () => {
  it("every order is a permutation; ascending/descending sorted stably; shuffled fixed by the seed", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 20 }),
        fc.nat(),
        (cs, seed) => {
          const points = cs.map(conc);
          const key = (xs: LoadPoint[]) => xs.map(loadValue).sort((a, b) => a - b);
          for (const o of ["listed", "ascending", "descending", "shuffled"] as const)
            assert.deepEqual(key(orderLoadPoints(points, o, seed)), key(points));
          const up = orderLoadPoints(points, "ascending", seed).map(loadValue);
          assert.deepEqual(
            up,
            [...up].sort((a, b) => a - b),
          );
          assert.deepEqual(
            orderLoadPoints(points, "descending", seed).map(loadValue),
            [...up].reverse(),
          );
          assert.deepEqual(orderLoadPoints(points, "listed", seed), points);
          assert.deepEqual(
            orderLoadPoints(points, "shuffled", seed),
            orderLoadPoints(points, "shuffled", seed),
          );
        },
      ),
    );
    assert.equal(isDescendingSweep([conc(8), conc(4), conc(1)]), true);
    assert.equal(isDescendingSweep([conc(1), conc(4)]), false);
    assert.equal(isDescendingSweep([conc(4)]), false);
  });

  it("the plan holds the points in run order; a mixed list cannot be sorted (file:line)", () => {
    const sets = ["workload.loadPoints=[{concurrency: 2}, {concurrency: 16}, {concurrency: 4}]"];
    const p = (o: string) =>
      planStack("local", [...sets, `workload.order=${o}`], { env: {} }).plan.runner;
    assert.deepEqual(p("descending").loadPoints.map(loadValue), [16, 4, 2]);
    assert.equal(p("descending").order, "descending");
    assert.deepEqual(p("listed").loadPoints.map(loadValue), [2, 16, 4]);
    assert.equal(p("listed").order, undefined);
    assert.throws(
      () =>
        planStack(
          "local",
          ["workload.loadPoints=[{concurrency: 2}, {requestRate: 4}]", "workload.order=ascending"],
          {
            env: {},
          },
        ),
      /workload\.order: ascending orders points by load, but concurrency and request-rate points have no common scale/,
    );
  });

  it("a run whose points ran heaviest first says so in its comparison", () => {
    const side = (label: string, value: number) => ({
      label,
      source: `run/${label}`,
      emulated: true,
      slo: {},
      workload: { dataset: "synthetic" },
      points: [
        {
          model: "m",
          point: `concurrency ${value}`,
          pointKind: "concurrency" as const,
          pointValue: value,
          repeats: 1,
          valid: true,
          samples: [{ ok: true, startMs: 0, endMs: 100, ttftMs: 10, osl: 4 }],
        },
      ],
    });
    const plans = (o: string) =>
      (["baseline", "managed"] as const).map(
        (m) =>
          planStack(
            "local",
            [
              `mode=${m}`,
              "workload.loadPoints=[{concurrency: 2}, {concurrency: 8}]",
              `workload.order=${o}`,
            ],
            {
              env: {},
            },
          ).plan,
      );
    const note = (o: string) => {
      const [a, b] = plans(o);
      return compareSides(side("baseline", 2), side("managed", 2), {
        run: { plans: { a: a!, b: b! } },
      }).notes.some((n) => /ran heaviest first \(descending\)/.test(n));
    };
    assert.equal(note("descending"), true);
    assert.equal(note("ascending"), false);
  });
});

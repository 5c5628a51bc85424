import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { blocksOf } from "../../experiments/execute.ts";
import {
  countSwaps,
  experimentPlan,
  orderSteps,
  planDifferences,
  planFingerprint,
} from "../../experiments/plan.ts";
import { parseExperimentPlan } from "../../runner/plan-file.ts";
import { pointSeed } from "../../stacks/load-point.ts";
import type { Arm, LoadPoint } from "../../stacks/plan-types.ts";
import { planStack } from "../../targets/plan-stack.ts";

const ARMS: Arm[] = ["baseline", "managed"];
const points = (n: number): LoadPoint[] =>
  Array.from({ length: n }, (_, i) => ({ kind: "concurrency", concurrency: 2 ** i }));

describe("experiment plan", () => {
  it("every order measures each (arm, point, repeat) exactly once, with one seed per point and repeat", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom("per-point", "abba", "sequential" as const),
        (np, repeats, order) => {
          const steps = orderSteps(ARMS, points(np), repeats, 7, order);
          assert.equal(steps.length, 2 * np * repeats);
          const keys = new Set(steps.map((s) => `${s.arm}/${s.point}/${s.repeat}`));
          assert.equal(keys.size, steps.length);
          for (const [i, s] of steps.entries()) assert.equal(s.index, i);
          for (const s of steps) assert.equal(s.seed, pointSeed(7, s.point, s.repeat));
          // Equal on both arms, different between points and repeats.
          const seeds = new Set(steps.map((s) => s.seed));
          assert.equal(seeds.size, np * repeats);
        },
      ),
    );
  });

  it("per-point alternates which arm goes first; abba swaps once per repeat; sequential once", () => {
    const pp = orderSteps(ARMS, points(3), 1, 0, "per-point")
      .map((s) => s.arm[0])
      .join("");
    assert.equal(pp, "bmmbbm");
    const abba = orderSteps(ARMS, points(2), 3, 0, "abba");
    assert.equal(abba.map((s) => s.arm[0]).join(""), "bbmmmmbbbbmm");
    assert.equal(countSwaps(abba), 3 - 1 + 1);
    assert.equal(blocksOf(abba).length, 4);
    assert.equal(countSwaps(orderSteps(ARMS, points(2), 3, 0, "sequential")), 1);
  });

  it("local runs side by side; a VM swaps arms in ABBA blocks and states what swaps cost", () => {
    const local = experimentPlan({
      stacks: ["local"],
      overrides: [],
      quick: false,
      plans: ARMS.map((a) => planStack("local", [`mode=${a}`]).plan),
      interleave: true,
    });
    assert.equal(local.order, "per-point");
    assert.equal(local.swaps.count, 0);
    const vm = experimentPlan({
      stacks: ["gcp-baseline", "gcp-managed"],
      overrides: [],
      quick: false,
      plans: ["gcp-baseline", "gcp-managed"].map((s) => planStack(s, ["run.repeats=2"]).plan),
      interleave: true,
    });
    assert.equal(vm.order, "abba");
    assert.equal(vm.swaps.count, 2);
    assert.match(vm.swaps.note, /reloads every engine/);
    assert.equal(vm.sessionHeader.managed, "x-session-id");
  });

  it("refuses arms that drive different loads, or two arms of one mode", () => {
    const a = planStack("gcp-baseline").plan;
    const b = planStack("gcp-managed", ["workload.requestCount=7"]).plan;
    assert.throws(
      () =>
        experimentPlan({
          stacks: ["x", "y"],
          overrides: [],
          quick: false,
          plans: [a, b],
          interleave: true,
        }),
      /same load: workload differs/,
    );
    assert.throws(
      () =>
        experimentPlan({
          stacks: ["x", "y"],
          overrides: [],
          quick: false,
          plans: [a, a],
          interleave: true,
        }),
      /share the mode/,
    );
  });

  it("the fingerprint ignores ports a launcher moves but not what is measured", () => {
    const mk = (over: string[]) =>
      experimentPlan({
        stacks: ["local"],
        overrides: over,
        quick: false,
        plans: ARMS.map((a) => planStack("local", [`mode=${a}`, ...over]).plan),
        interleave: true,
      });
    const p = mk([]);
    const moved = structuredClone(p);
    moved.arms.baseline!.engines[0]!.port = 1;
    assert.equal(planFingerprint(moved), planFingerprint(p));
    const other = mk(["workload.requestCount=5"]);
    assert.notEqual(planFingerprint(other), planFingerprint(p));
    assert.ok(planDifferences(p, other).includes("workload"));
  });

  it("plan.json that is missing parts, corrupt or of another version names the file", () => {
    assert.throws(() => parseExperimentPlan("{", "x/plan.json"), /x\/plan\.json: not valid JSON/);
    assert.throws(
      () => parseExperimentPlan("{}", "p.json"),
      /p\.json: not an inferbench experiment plan/,
    );
    assert.throws(
      () =>
        parseExperimentPlan('{"kind":"inferbench-experiment-plan","schemaVersion":9}', "p.json"),
      /version 9; this inferbench reads version 1/,
    );
    assert.throws(
      () =>
        parseExperimentPlan('{"kind":"inferbench-experiment-plan","schemaVersion":1}', "p.json"),
      /without "armNames"/,
    );
  });
});

/**
 * Attribution (issue 15 part 3): the shipped gcp pairs each differ in one thing, and
 * armDifferences says what differs between two plans.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { experimentPlan } from "../../experiments/plan.ts";
import {
  armDifferences,
  attributionWarning,
  differingFactors,
} from "../../stacks/arm-differences.ts";
import { checkConfig } from "../../targets/gcp-vm/preflight/index.ts";
import { planStack } from "../../targets/plan-stack.ts";

const PIN = [
  `engine.images.baseline=vllm/vllm-openai:v0.14.0@sha256:${"a".repeat(64)}`,
  `engine.images.managed=ghcr.io/ovg-project/kvcached-vllm@sha256:${"b".repeat(64)}`,
  "gcp.sshSourceRanges=[34.118.7.7/32]",
];
const load = (s: string) => planStack(s, PIN, { env: {} });

describe("shipped A/B pairs", () => {
  it("the KVCached pair differs only in the engine image and its env", () => {
    const off = load("gcp-kvcached-off").plan;
    const on = load("gcp-kvcached-on").plan;
    const d = armDifferences(off, on);
    assert.deepEqual(
      d.map((x) => x.what),
      ["engine image", "engine env"],
      JSON.stringify(d, null, 2),
    );
    assert.deepEqual(differingFactors(d), ["engine"]);
    assert.equal(attributionWarning(d), undefined);
    assert.match(d[1]!.b, /ENABLE_KVCACHED=true/);
    assert.equal(d[1]!.a, "(none)");
    // Packed where KVCached can matter: two engines per GPU, the same router on both arms.
    const perGpu = new Map<number, number>();
    for (const e of on.engines) for (const g of e.gpus) perGpu.set(g, (perGpu.get(g) ?? 0) + 1);
    assert.ok(
      [...perGpu.values()].every((n) => n === 2),
      JSON.stringify([...perGpu]),
    );
    assert.equal(off.router.policy, on.router.policy);
  });

  it("by default the KVCached arm runs the baseline's own image + kvcached: one factor", () => {
    const base = [PIN[0]!, PIN[2]!];
    const off = planStack("gcp-kvcached-off", base, { env: {} }).plan;
    const on = planStack("gcp-kvcached-on", base, { env: {} }).plan;
    const d = armDifferences(off, on);
    assert.deepEqual(
      d.map((x) => x.what),
      ["engine image", "engine env"],
    );
    const vllm = off.engines[0]!.image;
    assert.ok(
      d[0]!.a.split(", ").every((x) => x.endsWith(vllm)),
      d[0]!.a,
    );
    assert.match(
      d[0]!.b,
      new RegExp(
        `${vllm.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\+ kvcached 0\\.1\\.6 \\(built: inferbench/vllm-kvcached:0\\.1\\.6-a{12}\\)`,
      ),
    );
    assert.equal(attributionWarning(d), undefined);
  });

  it("the router pair differs only in the router policy (same engines)", () => {
    const rr = load("gcp-router-rr").plan;
    const lb = load("gcp-router-lb").plan;
    const d = armDifferences(rr, lb);
    assert.deepEqual(d, [
      { factor: "router", what: "router policy", a: "round-robin", b: "least-busy" },
    ]);
    assert.deepEqual(
      rr.engines.map((e) => [e.image, e.args]),
      lb.engines.map((e) => [e.image, e.args]),
    );
  });

  it("each pair is one experiment on one VM (same load, same gcp block)", () => {
    for (const [x, y] of [
      ["gcp-kvcached-off", "gcp-kvcached-on"],
      ["gcp-router-rr", "gcp-router-lb"],
    ] as const) {
      const a = load(x);
      const b = load(y);
      assert.doesNotThrow(() =>
        experimentPlan({
          stacks: [x, y],
          overrides: [],
          quick: false,
          plans: [a.plan, b.plan],
          interleave: true,
        }),
      );
      const r = checkConfig([
        { stack: x, config: a.loaded.config, plan: a.plan },
        { stack: y, config: b.loaded.config, plan: b.plan },
      ]);
      assert.deepEqual(r.problems, [], `${x}/${y}`);
    }
  });

  it("the reference pair changes engine and router at once: the report is warned", () => {
    const d = armDifferences(load("gcp-baseline").plan, load("gcp-managed").plan);
    assert.deepEqual(differingFactors(d), ["engine", "router"]);
    assert.match(
      attributionWarning(d)!,
      /More than one thing differs.*engine \(engine image, engine env\); router \(router policy\)/,
    );
  });

  it("finds flags, models and workload differences, and says when nothing differs", () => {
    const a = load("gcp-router-rr").plan;
    assert.match(attributionWarning(armDifferences(a, a))!, /do not differ/);
    const b = planStack(
      "gcp-router-rr",
      [...PIN, "engine.maxNumSeqs=128", "workload.requestCount=7"],
      { env: {} },
    ).plan;
    const d = armDifferences(a, b);
    assert.deepEqual(
      d.map((x) => x.what),
      ["engine flags", "workload"],
    );
    assert.match(d[0]!.b, /--max-num-seqs 128/);
  });
});

describe("the report says what differs", () => {
  const side = (label: string) => ({
    label,
    source: `run/${label}`,
    emulated: true,
    slo: { ttftMs: 500 },
    workload: { dataset: "synthetic" },
    points: [
      {
        model: "m",
        point: "concurrency 2",
        pointKind: "concurrency" as const,
        pointValue: 2,
        repeats: 1,
        valid: true,
        samples: Array.from({ length: 20 }, (_, i) => ({
          ok: true,
          startMs: i * 100,
          endMs: i * 100 + 80,
          ttftMs: 20 + (i % 3),
          osl: 50,
        })),
      },
    ],
  });

  it("compare puts the differences and the warning into the comparison, md and html show them", async () => {
    const { compareSides, runContext } = await import("../../results/compare.ts");
    const { renderMarkdown, renderHtml } = await import("../../results/report/index.ts");
    const a = load("gcp-baseline").plan;
    const b = load("gcp-managed").plan;
    const ctx = runContext({ arms: ["baseline", "managed"], plans: { baseline: a, managed: b } });
    const c = compareSides(side("baseline"), side("managed"), { ...(ctx ? { run: ctx } : {}) });
    assert.deepEqual(
      c.arms?.differences.map((d) => d.what),
      ["engine image", "engine env", "router policy"],
    );
    assert.match(c.notes[0]!, /More than one thing differs/);
    const md = renderMarkdown(c);
    assert.match(md, /## What differs between the arms/);
    assert.match(md, /> \*\*Warning: More than one thing differs/);
    assert.match(md, /\| router \| router policy \| round-robin \| least-busy \|/);
    const html = renderHtml(c);
    assert.match(html, /<h2>What differs between the arms<\/h2>/);
    assert.match(html, /<td[^>]*>least-busy<\/td>/);
    // A one-thing pair: the table, no warning.
    const one = compareSides(side("baseline"), side("managed"), {
      run: { plans: { a: load("gcp-router-rr").plan, b: load("gcp-router-lb").plan } },
    });
    assert.equal(one.arms?.warning, undefined);
    assert.doesNotMatch(renderMarkdown(one), /Warning: More than one/);
  });
});

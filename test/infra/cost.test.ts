/**
 * Cost on every run (issue 15 part 4): GPU-hours and $ from the manifest's billing window and the
 * price it recorded (the table's, with its date, or ssh.hourlyUsd), and per point $/1M output
 * tokens and $ per good request, in the comparison, its CSV and the report.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compareSides, comparisonCsv, runContext, runCost } from "../../results/compare.ts";
import { renderHtml, renderMarkdown } from "../../results/report/index.ts";
import { PRICE_TABLE_DATE } from "../../stacks/catalog.ts";
import type { Arm } from "../../stacks/plan-types.ts";
import { planStack } from "../../targets/plan-stack.ts";

const PIN = [
  `engine.images.managed=ghcr.io/ovg-project/kvcached-vllm@sha256:${"b".repeat(64)}`,
  "gcp.sshSourceRanges=[34.118.7.7/32]",
];
const plan = (s: string, more: string[] = []) => planStack(s, [...PIN, ...more], { env: {} }).plan;

/** 10 requests of 100 output tokens each over exactly 1 s per side (rate given by `spread`). */
function side(label: string, spanMs: number) {
  return {
    label,
    source: `run/${label}`,
    emulated: false,
    slo: { ttftMs: 500 },
    workload: { dataset: "synthetic" },
    points: [
      {
        model: "m",
        point: "concurrency 4",
        pointKind: "concurrency" as const,
        pointValue: 4,
        repeats: 1,
        valid: true,
        samples: Array.from({ length: 10 }, (_, i) => ({
          ok: true,
          startMs: (i * spanMs) / 10,
          endMs: ((i + 1) * spanMs) / 10,
          // Two of ten miss the TTFT SLO: goodput is 8 per span.
          ttftMs: i < 2 ? 900 : 100,
          osl: 100,
        })),
      },
    ],
  };
}

const gcpManifest = () => {
  const a = plan("gcp-kvcached-off");
  const b = plan("gcp-kvcached-on");
  return {
    arms: ["baseline", "managed"] as Arm[],
    plans: { baseline: a, managed: b },
    target: "gcp-vm" as const,
    emulated: false,
    config: { baseline: { gcp: { machineType: "a3-highgpu-8g" } } },
    infra: {
      state: "destroyed" as const,
      billing: {
        start: "2026-12-01T10:00:00.000Z",
        end: "2026-12-01T12:30:00.000Z",
        hourlyUsd: 88.49,
      },
    },
  };
};

describe("run cost", () => {
  it("GPU-hours and $ from the billing window, priced from the dated table", () => {
    const m = gcpManifest();
    const c = runCost(m, m.plans.baseline, "baseline")!;
    assert.equal(c.hourlyUsd, 88.49);
    assert.equal(c.gpus, 8, "a3-highgpu-8g bills all 8 GPUs though the pair uses 2");
    assert.equal(c.window?.hours, 2.5);
    assert.equal(c.gpuHours, 20);
    assert.ok(Math.abs(c.totalUsd! - 221.225) < 1e-9);
    assert.match(c.source, new RegExp(`prices of ${PRICE_TABLE_DATE}`));
    assert.match(c.source, /all 8 GPUs billed, 2 used/);
  });

  it("the ssh target's stated price is labelled as such, and as pretend on an emulated run", () => {
    const p = plan("gcp-router-rr");
    const c = runCost(
      {
        target: "ssh",
        emulated: true,
        infra: {
          state: "destroyed",
          hostFacts: { gpus: "0 H100 81559 MiB; 1 H100 81559 MiB" },
          billing: { start: "2026-12-01T10:00:00Z", end: "2026-12-01T10:06:00Z", hourlyUsd: 2.5 },
        },
      },
      p,
      "baseline",
    )!;
    assert.match(c.source, /^ssh\.hourlyUsd: the price stated for this host/);
    assert.match(c.source, /EMULATED run/);
    assert.equal(c.gpus, 2);
    assert.ok(Math.abs(c.totalUsd! - 0.25) < 1e-12);
    assert.equal(runCost({ target: "local", infra: { state: "none" } }, p, "baseline"), undefined);
  });

  it("per point: $/1M output tokens and $ per good request per arm, in comparison, CSV and report", () => {
    const ctx = runContext(gcpManifest())!;
    // A: 1000 tokens in 1 s; B twice as fast.
    const c = compareSides(side("baseline", 1000), side("managed", 500), { run: ctx });
    const row = c.rows[0]!;
    const perSec = 88.49 / 3600;
    const close = (x: number | undefined, y: number) =>
      assert.ok(Math.abs(x! - y) < 1e-9, `${x} vs ${y}`);
    close(row.a.usdPerMillionOutputTokens, (perSec / row.a.outputTokensPerSec) * 1e6);
    close(row.b.usdPerMillionOutputTokens, row.a.usdPerMillionOutputTokens! / 2);
    close(row.a.usdPerGoodRequest, perSec / row.a.goodputRps!);
    assert.equal(c.cost?.totalUsd, ctx.cost?.totalUsd);
    const csv = comparisonCsv(c);
    assert.match(
      csv,
      /^m,concurrency 4,usd_per_1m_output_tokens,USD,[\d.]+,[\d.]+,-50,,,cheaper,"estimate: host price 88\.49/m,
    );
    assert.match(csv, /usd_per_good_request/);
    const md = renderMarkdown(c);
    assert.match(md, /## Cost/);
    assert.match(md, /Priced at \$88\.49\/h \(ESTIMATE; .*prices of 2026-11-24/);
    assert.match(
      md,
      /2\.50 h, 20\.00 GPU-hours \(8 GPUs billed\), \\?~\$221\.2\d for the whole run/,
    );
    assert.match(md, /\$ per good request \(meets every SLO\) A/);
    assert.match(renderHtml(c), /<h2>Cost<\/h2>/);
  });

  it("a run without a price has no cost section; invalid points are not priced", () => {
    const m = gcpManifest();
    const noPrice = runContext({
      ...m,
      infra: { state: "destroyed" as const, billing: {} } as never,
    })!;
    const c = compareSides(side("baseline", 1000), side("managed", 500), { run: noPrice });
    assert.equal(c.cost, undefined);
    assert.doesNotMatch(renderMarkdown(c), /## Cost/);
    const bad = side("managed", 500);
    (bad.points[0] as { valid: boolean }).valid = false;
    const inv = compareSides(side("baseline", 1000), bad, { run: runContext(m)! });
    assert.equal(inv.rows[0]!.a.usdPerMillionOutputTokens, undefined);
  });
});

/**
 * Compare + report benchmark (`npm run bench:report`): 1,000,000 synthetic request records over
 * 2 sides × 3 models × 6 load points (3 concurrency, 3 request-rate; one point marked invalid),
 * with per-replica KV/queue time series. Times the lead's `compareSides` (results/compare.ts)
 * and the report (report.md, report.html, charts/*.png via headless Chromium when installed).
 * Goal: compare + report ≤ 30 s. The records are SYNTHETIC (formulas + a seeded RNG): this
 * measures our code's speed, not any serving stack.
 *
 * Options: --records N (default 1000000), --out DIR (default: a temp dir, removed afterwards),
 * --no-png (skip the browser).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { writeFileAtomic } from "../lib/atomic.ts";
import { seededRandom } from "../lib/random.ts";
import {
  compareSides,
  type PointData,
  type RequestSample,
  type SideData,
} from "../results/compare.ts";
import type { Comparison } from "../results/compare-types.ts";
import { findChromium } from "../results/report/chromium.ts";
import { renderHtml } from "../results/report/html.ts";
import { renderPngCharts } from "../results/report/index.ts";
import { renderMarkdown } from "../results/report/markdown.ts";

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const RECORDS = Number(opt("--records") ?? 1_000_000);
const keepOut = opt("--out");
const png = !args.includes("--no-png");

const MODELS = ["llama-3.1-8b-instruct", "qwen3-8b", "qwen3-32b"];
const POINTS: { kind: "concurrency" | "request-rate"; value: number }[] = [
  { kind: "concurrency", value: 1 },
  { kind: "concurrency", value: 8 },
  { kind: "concurrency", value: 32 },
  { kind: "request-rate", value: 1 },
  { kind: "request-rate", value: 4 },
  { kind: "request-rate", value: 16 },
];
const REPLICAS = ["engine-0", "engine-1", "engine-2"];

/** One side's synthetic points; `speed` < 1 makes a side faster. */
function makeSide(label: string, speed: number, skew: number, seed: number): SideData {
  const rng = seededRandom(seed);
  const nPoints = MODELS.length * POINTS.length;
  const perSide = Math.floor(RECORDS / 2);
  const points: PointData[] = [];
  for (const [mi, model] of MODELS.entries()) {
    for (const [pi, p] of POINTS.entries()) {
      const idx = mi * POINTS.length + pi;
      const perPoint = Math.floor(perSide / nPoints) + (idx < perSide % nPoints ? 1 : 0);
      const load = p.value;
      const samples: RequestSample[] = new Array(perPoint);
      const rps = p.kind === "request-rate" ? load : load * 0.8;
      let t = 0;
      for (let i = 0; i < perPoint; i++) {
        t += (-Math.log(1 - rng()) / rps) * 1000;
        const ttft =
          (30 + 4 * load + 20 * mi) * speed * Math.exp(0.4 * (rng() + rng() + rng() - 1.5));
        const itl = (8 + 0.3 * load + 2 * mi) * speed * (0.85 + 0.3 * rng());
        const osl = 64 + Math.floor(rng() * 128);
        const ok = rng() > 0.004;
        const r = rng();
        const backend = REPLICAS[r < (1 + skew) / 3 ? 0 : r < (2 + skew / 2) / 3 ? 1 : 2]!;
        samples[i] = ok
          ? {
              ok,
              startMs: t,
              endMs: t + ttft + itl * (osl - 1),
              ttftMs: ttft,
              itlMs: itl,
              osl,
              backend,
            }
          : { ok, startMs: t, endMs: t + ttft, backend };
      }
      const tSec = Array.from({ length: 120 }, (_, i) => i * 5);
      const invalid = mi === 2 && pi === 5 && label === "managed";
      points.push({
        model,
        point:
          p.kind === "concurrency" ? `concurrency ${load}` : `request rate ${load.toFixed(1)}/s`,
        pointKind: p.kind,
        pointValue: load,
        ...(p.kind === "request-rate" ? { requestedRps: load } : {}),
        samples,
        repeats: 1,
        valid: !invalid,
        ...(invalid ? { invalidReason: "schedule lag p99 1.2 s > 100 ms (synthetic)" } : {}),
        server: {
          prefixHitRate: 0.2 + 0.1 * (1 - speed),
          preemptions: Math.round(load * speed),
          kvUsageMean: Math.min(1, 0.1 + load * 0.02),
          kvUsageMax: Math.min(1, 0.2 + load * 0.03),
          queueDepthMean: load * 0.2 * speed,
          timeseries: {
            tSec,
            replicas: Object.fromEntries(
              REPLICAS.map((rep, ri) => [
                rep,
                {
                  kvUsage: tSec.map((s) =>
                    Math.min(1, 0.05 + ri * 0.05 + load * 0.02 + 0.1 * Math.sin(s / 30)),
                  ),
                  queueDepth: tSec.map((s) =>
                    Math.max(0, Math.round(load * 0.2 * speed + ri + 2 * Math.sin(s / 20 + ri))),
                  ),
                },
              ]),
            ),
          },
        },
      });
    }
  }
  return {
    label,
    source: `synthetic/${label}`,
    emulated: true,
    slo: { ttftMs: 500, itlMs: 40 },
    workload: { dataset: "synthetic", isl: 512, osl: "64-192", seed: 1 },
    points,
  };
}

const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  console.log(
    `bench:report — ${RECORDS.toLocaleString("en-US")} SYNTHETIC request records, 2 sides × ${MODELS.length} models × ${POINTS.length} load points`,
  );
  let t0 = performance.now();
  const a = makeSide("baseline", 1, 0.3, 11);
  const b = makeSide("managed", 0.8, 0, 22);
  const nRecords = [a, b].reduce(
    (s, side) => s + side.points.reduce((t, p) => t + p.samples.length, 0),
    0,
  );
  console.log(
    `  generate records (not timed in the goal): ${secs(performance.now() - t0)} (${nRecords.toLocaleString("en-US")} records)`,
  );

  const dir = keepOut ?? mkdtempSync(join(tmpdir(), "inferbench-bench-report-"));
  try {
    const start = performance.now();
    t0 = performance.now();
    const c: Comparison = compareSides(a, b, { seed: 1 });
    const tCompare = performance.now() - t0;
    console.log(`  compareSides (results/compare.ts): ${secs(tCompare)} → ${c.rows.length} rows`);

    t0 = performance.now();
    const md = renderMarkdown(c);
    const tMd = performance.now() - t0;
    t0 = performance.now();
    const html = renderHtml(c);
    const tHtml = performance.now() - t0;
    await writeFileAtomic(join(dir, "report.md"), md);
    await writeFileAtomic(join(dir, "report.html"), html);
    console.log(
      `  renderMarkdown: ${secs(tMd)} (${(md.length / 1024).toFixed(0)} KiB); renderHtml: ${secs(tHtml)} (${(html.length / 1024).toFixed(0)} KiB)`,
    );

    let pngs: string[] = [];
    let tPng = 0;
    if (png) {
      t0 = performance.now();
      pngs = await renderPngCharts(c, join(dir, "charts"));
      tPng = performance.now() - t0;
      console.log(
        findChromium()
          ? `  PNG charts (headless Chromium): ${secs(tPng)} (${pngs.length} charts)`
          : "  PNG charts: SKIPPED (no /usr/bin/chromium) — total below excludes them",
      );
    }
    const total = performance.now() - start;
    console.log(
      `  TOTAL compare + report: ${secs(total)} (goal ≤ 30 s: ${total <= 30_000 ? "met" : "NOT met"})${png ? "" : " — PNGs skipped (--no-png)"}`,
    );
    if (keepOut) console.log(`  report written to ${dir}`);
  } finally {
    if (!keepOut) rmSync(dir, { recursive: true, force: true });
  }
}

await main();

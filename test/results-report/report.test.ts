import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { buildCharts, groupByModel } from "../../results/report/charts.ts";
import { escapeHtml, escapeMarkdown } from "../../results/report/escape.ts";
import { fmtDeltaCi, fmtSignedPct } from "../../results/report/format.ts";
import { renderHtml } from "../../results/report/html.ts";
import { EMULATED_BANNER, renderMarkdown } from "../../results/report/markdown.ts";
import { ITL_DEFINITION } from "../../results/report/metrics.ts";
import { cropImage, decodePng, encodePng } from "../../results/report/png.ts";
import { niceTicks } from "../../results/report/svg.ts";
import { EVIL_MODEL, INVALID_REASON, makeComparison } from "./fixture.ts";

describe("report.md", () => {
  const emu = renderMarkdown(makeComparison({ emulated: true }));
  const real = renderMarkdown(makeComparison({ emulated: false }));

  it("starts with the EMULATED banner only when emulated", () => {
    assert.ok(emu.split("\n")[0]!.includes(`**${EMULATED_BANNER}**`));
    assert.ok(!real.includes("EMULATED"));
  });

  it("shows verdicts, deltas with intervals, sample sizes and the ITL definition", () => {
    assert.match(emu, /-30\.0% \[-34\.0, -26\.0\] \*\*better\*\*/);
    assert.match(emu, /\+1\.0% \[-3\.0, \+5\.0\] \| within noise/);
    assert.ok(emu.includes("Sample: A 210 requests (0 failed); B 210 requests (0 failed)"));
    assert.ok(emu.includes(ITL_DEFINITION));
    assert.ok(emu.includes("95% CI: bootstrap over 210+210 requests"));
    // One section per model × load point: 3 models × 6 points.
    assert.equal(emu.match(/^### /gm)?.length, 18);
    for (const h of [
      "TTFT p99 (ms)",
      "ITL p50 (ms)",
      "E2E latency p90 (ms)",
      "request throughput (req/s)",
    ])
      assert.ok(emu.includes(`| ${h} |`), h);
    assert.ok(emu.includes("| goodput (all SLOs met) (req/s) |"));
    assert.ok(emu.includes("| error rate (%) |"));
    // A delta the report has no fixed row for is still shown.
    assert.ok(
      emu.includes(
        "| prefix-cache hit rate (%) | 30.0 | 45.0 | +50.0% [+46.0, +54.0] | **better** |",
      ),
    );
  });

  it("shows the server view", () => {
    assert.ok(
      emu.includes(
        "| share of requests per replica | engine-0 16.7%, engine-1 33.3%, engine-2 50.0% |",
      ),
    );
    for (const l of [
      "prefix-cache hit rate",
      "preemptions",
      "KV cache usage mean",
      "queue depth mean",
    ])
      assert.ok(emu.includes(`| ${l} |`), l);
  });

  it("marks the invalid point and never compares it", () => {
    assert.ok(
      emu.includes(
        `INVALID: load generator fell behind: ${INVALID_REASON} (managed) — not a result`,
      ),
    );
    const section = emu.slice(emu.indexOf("request rate 4.0/s\n\n**INVALID"));
    const table = section.slice(0, section.indexOf("Server view"));
    assert.ok(!/better|worse|within noise/.test(table), "no verdict at an invalid point");
    assert.match(table, /\| TTFT p99 \(ms\) \| [\d.]+ \| INVALID \| not compared \| — \|/);
    // The invalid side's measured TTFT p99 (4 req/s × factor 0.8) appears nowhere in the section.
    assert.ok(!table.includes("169"));
  });

  it("escapes user text (model names, notes)", () => {
    assert.ok(!emu.includes("<script>"));
    assert.ok(emu.includes(escapeMarkdown(EVIL_MODEL)));
    assert.ok(emu.includes("note with &lt;b>html&lt;/b> & \\| pipes"));
    // Every table row has the same number of cells as its header (pipes escaped).
    for (const block of emu.split("\n\n").filter((b) => b.startsWith("| "))) {
      const lines = block.split("\n");
      const cells = (l: string) => l.replace(/\\\|/g, "").split("|").length;
      for (const l of lines) assert.equal(cells(l), cells(lines[0]!), l);
    }
  });
});

describe("report.html", () => {
  const c = makeComparison({ emulated: true });
  const html = renderHtml(c);
  const charts = buildCharts(c);

  it("is self-contained: no external resource references", () => {
    assert.doesNotMatch(html, /(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    assert.doesNotMatch(html, /url\(\s*["']?(https?:)?\/\//i);
    assert.doesNotMatch(html, /@import/i);
    assert.doesNotMatch(html, /https?:\/\//);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  });

  it("escapes every piece of user text", () => {
    assert.equal(html.match(/<script>/g)?.length, 2, "only the report's own two scripts");
    assert.ok(!html.includes(EVIL_MODEL));
    assert.ok(html.includes(escapeHtml(EVIL_MODEL)));
    assert.ok(!html.includes("<b>html</b>"));
  });

  it("has one <svg> per chart and every chart kind", () => {
    assert.equal(html.match(/<svg\b/g)?.length, charts.length);
    assert.equal(new Set(charts.map((ch) => ch.id)).size, charts.length, "unique chart ids");
    const kinds = new Set(charts.map((ch) => ch.kind));
    for (const k of [
      "ttft-vs-rate",
      "itl-vs-load",
      "percentile-bars",
      "replica-share",
      "timeseries",
    ])
      assert.ok(kinds.has(k), k);
    // Per model: ttft, itl, percentiles, replica share (3 models) + 2 time-series points.
    assert.equal(charts.length, 3 * 4 + 2);
    for (const ch of charts) assert.ok(html.includes(`data-chart="${ch.id}"`));
  });

  it("labels the x axis as achieved rate and shows legends", () => {
    const ttft = charts.find((ch) => ch.kind === "ttft-vs-rate")!;
    assert.ok(ttft.svg.includes("achieved request rate (req/s)"));
    assert.ok(ttft.svg.includes('class="legend"'));
    assert.ok(ttft.svg.includes(">baseline p99<") && ttft.svg.includes(">managed p50<"));
    assert.ok(ttft.svg.includes(">TTFT (ms)<"));
  });

  it("shows a visible EMULATED banner and tags every chart", () => {
    assert.match(html, /<div class="banner" id="emulated-banner">EMULATED/);
    for (const ch of charts) assert.ok(ch.svg.includes(">EMULATED<"), ch.id);
    const real = makeComparison({ emulated: false });
    assert.ok(!renderHtml(real).includes("EMULATED"));
    for (const ch of buildCharts(real)) assert.ok(!ch.svg.includes("EMULATED"));
  });

  it("draws invalid points hollow with a label, never as results", () => {
    const evil = groupByModel(c).find((g) => g.model === EVIL_MODEL)!;
    const ttft = charts.find((ch) => ch.id === `ttft-vs-rate-${evil.slug}`)!;
    assert.equal(ttft.svg.match(/data-valid="false"/g)?.length, 1);
    assert.ok(
      ttft.svg.includes(escapeHtml(`INVALID: load generator fell behind: ${INVALID_REASON}`)),
    );
    assert.match(ttft.svg, /fill="#ffffff" stroke="#ff7f0e" stroke-width="2"/, "hollow marker");
    // Valid markers: 2 sides × 2 quantiles × 6 points, minus managed's 2 at the invalid point.
    assert.equal(ttft.svg.match(/data-valid="true"/g)?.length, 22);
    const bars = charts.find((ch) => ch.id === `percentiles-${evil.slug}`)!;
    assert.ok(bars.svg.includes("managed: INVALID"));
    assert.ok(!bars.svg.includes("request rate 4.0/s · managed"), "no bar for the invalid side");
    const share = charts.find((ch) => ch.id === `replica-share-${evil.slug}`)!;
    assert.ok(share.svg.includes("INVALID (load generator fell behind): not plotted"));
    assert.match(html, /<div class="invalid">INVALID: load generator fell behind: /);
    // Other models have no invalid marks.
    const llama = charts.find((ch) => ch.id === "ttft-vs-rate-llama-3-1-8b")!;
    assert.ok(!llama.svg.includes('data-valid="false"'));
  });

  it("renders without ITL or replica data (non-streaming, no router headers)", () => {
    const bare = makeComparison({ emulated: false, small: true });
    for (const row of bare.rows) {
      for (const s of [row.a, row.b]) {
        delete s.itlMs;
        delete s.ttftMs;
        s.server = { replicaShare: {} };
      }
    }
    const kinds = buildCharts(bare).map((ch) => ch.kind);
    assert.deepEqual([...new Set(kinds)], ["ttft-vs-rate", "percentile-bars"]);
    assert.ok(buildCharts(bare)[0]!.svg.includes("no valid points"));
    assert.ok(renderMarkdown(bare).includes("| prefix-cache hit rate | — | — |"));
  });
});

describe("chart kit", () => {
  it("niceTicks covers the range with evenly spaced ticks", () => {
    fc.assert(
      fc.property(
        fc.double({ min: -1e6, max: 1e6, noNaN: true }),
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        (lo, span) => {
          const t = niceTicks(lo, lo + span);
          assert.ok(t.length >= 2 && t.length <= 51);
          const step = t[1]! - t[0]!;
          assert.ok(step > 0);
          // Covers the range up to a negligible fraction of a step (floating point).
          assert.ok(t[0]! <= lo + 1e-6 * step);
          assert.ok(t[t.length - 1]! >= lo + span - 1e-6 * step);
          for (let i = 2; i < t.length; i++)
            assert.ok(Math.abs(t[i]! - t[i - 1]! - step) <= 1e-6 * Math.abs(step));
        },
      ),
      { seed: 7, numRuns: 500 },
    );
    assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  });

  it("formats deltas with their interval", () => {
    assert.equal(fmtSignedPct(12.34), "+12.3%");
    assert.equal(fmtSignedPct(-0.04), "-0.0%");
    assert.equal(fmtDeltaCi(-5, -9.5, -0.5), "-5.0% [-9.5, -0.5]");
    assert.equal(fmtDeltaCi(3, Number.NaN, Number.NaN), "+3.0% (no interval)");
  });

  it("escapes HTML and Markdown", () => {
    assert.equal(
      escapeHtml(`<a href="x">'&'</a>`),
      "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;",
    );
    fc.assert(
      fc.property(fc.string(), (s) => {
        const e = escapeHtml(s);
        assert.ok(!/[<>"']/.test(e));
        const m = escapeMarkdown(s);
        assert.ok(!m.includes("<") && !/[\r\n]/.test(m));
        assert.ok(!/(^|[^\\])\|/.test(m.replace(/\\\\/g, "")), "every pipe escaped");
      }),
      { seed: 7, numRuns: 500 },
    );
  });

  it("PNG codec round-trips and crops", () => {
    const w = 7;
    const h = 5;
    const data = new Uint8Array(w * h * 3).map((_, i) => (i * 37) % 256);
    const img = { width: w, height: h, channels: 3 as const, data };
    const back = decodePng(encodePng(img));
    assert.deepEqual(back, img);
    const crop = cropImage(img, 2, 1, 3, 2);
    assert.equal(crop.width, 3);
    assert.deepEqual(
      [...crop.data.subarray(0, 3)],
      [...data.subarray((1 * w + 2) * 3, (1 * w + 2) * 3 + 3)],
    );
  });
});

describe("with the comparison from results/compare.ts", () => {
  it("renders every delta compareSides computes in its fixed row (no unknown metric keys)", async () => {
    const { compareSides } = await import("../../results/compare.ts");
    const { extraDeltas } = await import("../../results/report/metrics.ts");
    const side = (label: string, f: number) => ({
      label,
      source: `test/${label}`,
      emulated: true,
      slo: { ttftMs: 200 },
      workload: { dataset: "synthetic" },
      points: [1, 4].map((conc) => ({
        model: "m",
        point: `concurrency ${conc}`,
        pointKind: "concurrency" as const,
        pointValue: conc,
        repeats: 1,
        valid: true,
        samples: Array.from({ length: 60 }, (_, i) => ({
          ok: i % 30 !== 7,
          startMs: i * 100,
          endMs: i * 100 + (500 + ((i * 37) % 100)) * f,
          ttftMs: (50 + ((i * 13) % 40)) * f,
          itlMs: (10 + ((i * 7) % 5)) * f,
          osl: 50,
          backend: `engine-${i % 2}`,
        })),
      })),
    });
    const c = compareSides(side("baseline", 1), side("managed", 0.7), { seed: 1 });
    for (const row of c.rows) {
      assert.ok(row.deltas.length > 0);
      assert.deepEqual(
        extraDeltas(row).map((d) => d.metric),
        [],
      );
    }
    const md = renderMarkdown(c);
    assert.match(
      md,
      /\| TTFT p99 \(ms\) \| [\d.]+ \| [\d.]+ \| -[\d.]+% \[-[\d.]+, -[\d.]+\] \| \*\*better\*\* \|/,
    );
    assert.ok(md.includes("| goodput (all SLOs met) (req/s) |"));
    assert.match(renderHtml(c), /engine-0 51.7%, engine-1 48.3%/);
  });
});

describe("PNG export without Chromium", () => {
  it("is skipped with a warning naming the fix; text reports are still written", async () => {
    const { writeReport } = await import("../../results/report/index.ts");
    const { createLogger } = await import("../../lib/logger.ts");
    const { mkdtemp, readdir, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = await mkdtemp(join(tmpdir(), "inferbench-report-"));
    const saved = process.env["INFERBENCH_CHROMIUM"];
    process.env["INFERBENCH_CHROMIUM"] = join(dir, "no-such-chromium");
    const lines: string[] = [];
    try {
      const { files } = await writeReport(makeComparison({ emulated: false, small: true }), dir, {
        logger: createLogger("report", (l) => lines.push(l)),
      });
      assert.deepEqual(
        files.map((f) => f.slice(dir.length + 1)),
        ["report.md", "report.html"],
      );
      assert.deepEqual((await readdir(dir)).sort(), ["report.html", "report.md"]);
      assert.equal(lines.length, 1);
      assert.match(
        lines[0]!,
        /warn: PNG charts skipped: headless Chromium not found .*apt-get install -y chromium/,
      );
    } finally {
      if (saved === undefined) delete process.env["INFERBENCH_CHROMIUM"];
      else process.env["INFERBENCH_CHROMIUM"] = saved;
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("mixed emulated and measured sides", () => {
  it("says which side is emulated in both formats", () => {
    const c = { ...makeComparison({ emulated: true }), emulatedSides: { a: false, b: true } };
    const md = renderMarkdown(c);
    assert.match(md, /- A: .*\(measured on real engines\)/);
    assert.match(md, /- B: .*\(EMULATED: engine-sim\)/);
    assert.match(renderHtml(c), /\(EMULATED: engine-sim\)/);
    const same = renderMarkdown(makeComparison({ emulated: true }));
    assert.doesNotMatch(same, /measured on real engines/);
  });
});

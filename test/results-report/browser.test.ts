/**
 * Opens report.html in headless Chromium (Debian's `chromium`; .ci/run installs it) and checks
 * that it renders without console or script errors and shows every chart; writes the report,
 * its PNG charts and a screenshot (report.png) to $INFERBENCH_REPORT_TEST_OUT, default
 * <os tmpdir>/inferbench-report-test/ (kept for inspection, replaced on each run).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { chromiumPath } from "../../results/report/chromium.ts";
import { buildCharts, checkReportInBrowser, writeReport } from "../../results/report/index.ts";
import { decodePng } from "../../results/report/png.ts";
import { makeComparison } from "./fixture.ts";

const OUT = `${process.env["INFERBENCH_REPORT_TEST_OUT"] || join(tmpdir(), "inferbench-report-test")}/`;
const hasChromium = existsSync(chromiumPath());
const skip = hasChromium
  ? false
  : `headless Chromium not found at ${chromiumPath()}: apt-get install -y chromium (.ci/run installs it)`;

describe("report in headless Chromium", { skip, timeout: 90_000 }, () => {
  it("renders every chart without errors; PNGs and a screenshot are written", async (t) => {
    await rm(OUT, { recursive: true, force: true });
    const c = makeComparison({ emulated: true, small: true });
    const charts = buildCharts(c);
    const { files } = await writeReport(c, OUT);
    const pngs = files.filter((f) => f.endsWith(".png"));
    assert.equal(pngs.length, charts.length, "one PNG per chart");
    for (const [i, ch] of charts.entries()) {
      const img = decodePng(await readFile(pngs[i]!));
      assert.equal(img.width, ch.width, ch.id);
      assert.equal(img.height, ch.height, ch.id);
      // The crop is this chart: its top-right corner holds the red EMULATED tag.
      const px = (9 * ch.width + ch.width - 105) * img.channels;
      assert.deepEqual([...img.data.subarray(px, px + 3)], [0xb0, 0x00, 0x20], ch.id);
    }

    const check = await checkReportInBrowser(`${OUT}report.html`, {
      screenshot: `${OUT}report.png`,
    });
    assert.deepEqual(check.consoleErrors, []);
    assert.equal(check.scriptErrors, 0);
    assert.equal(check.chartsTotal, charts.length);
    assert.equal(check.chartsVisible, charts.length);
    assert.equal(check.renderCheck, "ok");
    assert.ok(check.dom.includes('id="emulated-banner"'));
    t.diagnostic(`report, charts and screenshot in ${OUT}`);
    const shot = decodePng(await readFile(`${OUT}report.png`));
    assert.equal(shot.width, 1100);
    assert.ok(shot.height >= 600);
  });

  it("a report with a broken chart or an external load is caught", async () => {
    const c = makeComparison({ emulated: false, small: true });
    const { renderHtml } = await import("../../results/report/html.ts");
    const { writeFileAtomic } = await import("../../lib/atomic.ts");
    // Hide one chart and try to load an external image: the check must fail on both.
    const bad = renderHtml(c)
      .replace('<svg class="chart"', '<svg style="display:none" class="chart"')
      .replace("</body>", '<img src="http://127.0.0.1:9/x.png"></body>');
    await writeFileAtomic(`${OUT}bad.html`, bad);
    const check = await checkReportInBrowser(`${OUT}bad.html`);
    assert.equal(check.renderCheck, "fail");
    assert.equal(check.chartsVisible, check.chartsTotal - 1);
    assert.ok(check.consoleErrors.length > 0, "CSP refusal is reported");
    await rm(`${OUT}bad.html`, { force: true });
  });
});

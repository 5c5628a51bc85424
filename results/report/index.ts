/**
 * Report files for a Comparison: report.md, a self-contained report.html, and charts/*.png
 * rendered by headless Chromium. Without Chromium the PNGs are skipped with a warning; the HTML
 * (inline SVG) is complete on its own.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { createLogger, type Logger } from "../../lib/logger.ts";
import type { Comparison } from "../compare-types.ts";
import { buildCharts } from "./charts.ts";
import { CHROMIUM_MISSING_HINT, chromiumPath, findChromium, runChromium } from "./chromium.ts";
import { CSP, renderHtml } from "./html.ts";
import { renderMarkdown } from "./markdown.ts";
import { cropImage, decodePng, encodePng } from "./png.ts";
import type { ChartDoc } from "./svg.ts";

export { checkReportInBrowser } from "./browser-check.ts";
export { buildCharts } from "./charts.ts";
export { findChromium } from "./chromium.ts";
export { renderHtml } from "./html.ts";
export { renderMarkdown } from "./markdown.ts";
export type { ChartDoc } from "./svg.ts";

export interface PngOptions {
  logger?: Logger;
  /** Per browser launch. */
  timeoutMs?: number;
}

/** Page height per browser launch; one screenshot is cropped into that page's charts. */
const MAX_PAGE_HEIGHT = 8000;

function pageHtml(items: { chart: ChartDoc; top: number }[]): string {
  const divs = items
    .map(
      ({ chart, top }) =>
        `<div style="position:absolute;left:0;top:${top}px;width:${chart.width}px;height:${chart.height}px">${chart.svg}</div>`,
    )
    .join("");
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${CSP}"><style>html,body{margin:0;padding:0;background:#fff;overflow:hidden}svg{display:block}</style></head><body>${divs}</body></html>`;
}

/** Groups charts into pages no taller than MAX_PAGE_HEIGHT (a taller chart gets its own page). */
export function paginate(charts: ChartDoc[]): { chart: ChartDoc; top: number }[][] {
  const pages: { chart: ChartDoc; top: number }[][] = [];
  let page: { chart: ChartDoc; top: number }[] = [];
  let y = 0;
  for (const chart of charts) {
    if (page.length && y + chart.height > MAX_PAGE_HEIGHT) {
      pages.push(page);
      page = [];
      y = 0;
    }
    page.push({ chart, top: y });
    y += chart.height;
  }
  if (page.length) pages.push(page);
  return pages;
}

async function screenshot(
  htmlPath: string,
  pngPath: string,
  w: number,
  h: number,
  timeoutMs: number,
) {
  const res = await runChromium(
    [`--screenshot=${pngPath}`, `--window-size=${w},${h}`, pathToFileURL(htmlPath).href],
    { timeoutMs },
  );
  if (res.code !== 0) {
    throw new Error(
      `chromium exited with code ${res.code}: ${res.stderr.trim().split("\n").slice(-3).join(" | ")}`,
    );
  }
}

/** Renders chart SVGs to `<outDir>/<id>.png`; returns the written paths ([] without Chromium). */
export async function renderChartPngs(
  charts: ChartDoc[],
  outDir: string,
  opts: PngOptions = {},
): Promise<string[]> {
  const log = opts.logger ?? createLogger("report");
  if (charts.length === 0) return [];
  if (!findChromium()) {
    log.warn(
      `PNG charts skipped: headless Chromium not found at ${chromiumPath()} (${CHROMIUM_MISSING_HINT}); report.html has every chart as inline SVG`,
    );
    return [];
  }
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const tmp = await mkdtemp(join(tmpdir(), "inferbench-png-"));
  const written: string[] = [];
  try {
    for (const [pi, page] of paginate(charts).entries()) {
      const w = Math.max(...page.map((p) => p.chart.width));
      const h = page.reduce((s, p) => Math.max(s, p.top + p.chart.height), 0);
      const html = join(tmp, `page-${pi}.html`);
      const shot = join(tmp, `page-${pi}.png`);
      await writeFile(html, pageHtml(page));
      await screenshot(html, shot, w, h, timeoutMs);
      let img: ReturnType<typeof decodePng> | undefined;
      try {
        img = decodePng(await readFile(shot));
        if (img.width < w || img.height < h)
          throw new Error(`screenshot is ${img.width}×${img.height}, expected ${w}×${h}`);
      } catch (err) {
        log.debug(
          `cropping the page screenshot failed (${(err as Error).message}); one launch per chart`,
        );
        img = undefined;
      }
      for (const { chart, top } of page) {
        const dest = join(outDir, `${chart.id}.png`);
        if (img) {
          await writeFileAtomic(dest, encodePng(cropImage(img, 0, top, chart.width, chart.height)));
        } else {
          const one = join(tmp, `${chart.id}.html`);
          const onePng = join(tmp, `${chart.id}.png`);
          await writeFile(one, pageHtml([{ chart, top: 0 }]));
          await screenshot(one, onePng, chart.width, chart.height, timeoutMs);
          await writeFileAtomic(dest, await readFile(onePng));
        }
        written.push(dest);
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return written;
}

/** Renders every chart of the comparison to PNG in outDir (see renderChartPngs). */
export async function renderPngCharts(
  c: Comparison,
  outDir: string,
  opts: PngOptions = {},
): Promise<string[]> {
  return renderChartPngs(buildCharts(c), outDir, opts);
}

/**
 * Writes report.md, report.html and charts/<chart>.png into dir (each file atomically).
 * `png: false` skips the browser (e.g. when only the text reports are wanted).
 */
export async function writeReport(
  c: Comparison,
  dir: string,
  opts: PngOptions & { png?: boolean } = {},
): Promise<{ files: string[] }> {
  const md = join(dir, "report.md");
  const html = join(dir, "report.html");
  await writeFileAtomic(md, renderMarkdown(c));
  await writeFileAtomic(html, renderHtml(c));
  const pngs = opts.png === false ? [] : await renderPngCharts(c, join(dir, "charts"), opts);
  return { files: [md, html, ...pngs] };
}

/**
 * Opens a rendered report.html in headless Chromium and reads back what its inline check script
 * recorded on <body> (charts with a non-zero box, script errors), plus console errors from
 * Chromium's log; optionally saves a full-page screenshot.
 */
import { pathToFileURL } from "node:url";
import { runChromium } from "./chromium.ts";

export interface BrowserCheck {
  /** `ok` when every chart has a non-zero bounding box and no script error happened. */
  renderCheck: string | undefined;
  chartsTotal: number;
  chartsVisible: number;
  scriptErrors: number;
  /** Console messages at error level, and CSP refusals (an external load would show here). */
  consoleErrors: string[];
  docHeight: number;
  dom: string;
  screenshot?: string;
}

function bodyAttr(dom: string, name: string): string | undefined {
  const body = /<body\b[^>]*>/i.exec(dom)?.[0] ?? "";
  return new RegExp(`\\b${name}="([^"]*)"`).exec(body)?.[1];
}

/** Lines of Chromium's stderr log that report page-level errors. */
export function consoleErrorLines(stderr: string): string[] {
  return stderr
    .split("\n")
    .filter((l) => /CONSOLE|Uncaught|Refused to|Failed to load resource|net::ERR_/i.test(l))
    .filter((l) => !/:INFO:CONSOLE.*"\[?info|debug\]?/i.test(l));
}

export async function checkReportInBrowser(
  htmlPath: string,
  opts: { screenshot?: string; width?: number; maxHeight?: number; timeoutMs?: number } = {},
): Promise<BrowserCheck> {
  const url = pathToFileURL(htmlPath).href;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const width = opts.width ?? 1100;
  const res = await runChromium(
    [
      "--enable-logging=stderr",
      "--v=0",
      "--virtual-time-budget=5000",
      `--window-size=${width},900`,
      "--dump-dom",
      url,
    ],
    { timeoutMs },
  );
  if (res.code !== 0) throw new Error(`chromium --dump-dom exited with code ${res.code}`);
  const dom = res.stdout;
  const num = (n: string) => Number(bodyAttr(dom, n) ?? "0");
  const check: BrowserCheck = {
    renderCheck: bodyAttr(dom, "data-render-check"),
    chartsTotal: num("data-charts-total"),
    chartsVisible: num("data-charts-visible"),
    scriptErrors: num("data-errors"),
    consoleErrors: consoleErrorLines(res.stderr),
    docHeight: num("data-doc-height"),
    dom,
  };
  if (opts.screenshot) {
    const h = Math.max(600, Math.min(opts.maxHeight ?? 16000, check.docHeight || 2000));
    const shot = await runChromium(
      [`--screenshot=${opts.screenshot}`, `--window-size=${width},${h}`, url],
      { timeoutMs },
    );
    if (shot.code !== 0) throw new Error(`chromium --screenshot exited with code ${shot.code}`);
    check.screenshot = opts.screenshot;
  }
  return check;
}

/**
 * report.html: one self-contained file (inline CSS, inline SVG charts, one small inline script),
 * no network: a Content-Security-Policy forbids every external load. The script only marks
 * <body> with whether every chart has a non-zero box and whether any script error occurred, so
 * a headless browser (the test, `--dump-dom`) can check the report rendered.
 */
import type { Comparison, ComparisonRow } from "../compare-types.ts";
import { buildModelCharts, groupByModel } from "./charts.ts";
import { escapeHtml as esc } from "./escape.ts";
import {
  EMULATED_BANNER,
  headlineCells,
  SUMMARY_HEADERS,
  sideOrigin,
  sloText,
  verdictCounts,
} from "./markdown.ts";
import {
  bothValid,
  INVALID_CELL,
  ITL_DEFINITION,
  invalidLines,
  rateText,
  renderMetricRows,
  renderServerRows,
  sampleText,
} from "./metrics.ts";
import { armsTable, costTable, type FactTable, ranTable } from "./run-facts.ts";
import type { ChartDoc } from "./svg.ts";

export const CSP =
  "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:0 auto;max-width:1000px;padding:16px 20px 40px;color:#222;background:#fff}
h1{font-size:22px;margin:12px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:20px 0 6px}
.banner{background:#b00020;color:#fff;font-weight:bold;padding:10px 14px;border-radius:4px;font-size:16px;letter-spacing:.02em}
.invalid{background:#fdecea;color:#8a1020;border-left:4px solid #b00020;padding:6px 10px;margin:6px 0;font-weight:bold}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left;white-space:normal}td{white-space:nowrap}.tw{overflow-x:auto}th{background:#f4f4f4}
td.better{color:#11612b;font-weight:bold}td.worse{color:#a1141b;font-weight:bold}td.noise{color:#666}td.inv{color:#a1141b;font-weight:bold}
ul.meta{padding-left:18px;font-size:14px}figure{margin:14px 0}figcaption{font-size:12px;color:#555}
svg.chart{display:block;max-width:100%;height:auto;border:1px solid #eee}
`;

/** Runs first: records script errors so a broken report is detectable from the DOM. */
const ERROR_HOOK = `window.__reportErrors=[];window.addEventListener("error",function(e){window.__reportErrors.push(String(e.message||e));});`;

/** Runs last: marks <body> with the render check (every chart has a non-zero bounding box). */
const RENDER_CHECK = `(function(){function check(){var c=document.querySelectorAll("svg.chart"),ok=0;for(var i=0;i<c.length;i++){var r=c[i].getBoundingClientRect();if(r.width>0&&r.height>0)ok++;}var b=document.body;b.setAttribute("data-charts-total",String(c.length));b.setAttribute("data-charts-visible",String(ok));b.setAttribute("data-doc-height",String(Math.ceil(document.documentElement.scrollHeight)));b.setAttribute("data-errors",String(window.__reportErrors.length));b.setAttribute("data-render-check",ok===c.length&&window.__reportErrors.length===0?"ok":"fail");}if(document.readyState==="complete")check();else window.addEventListener("load",check);})();`;

function verdictClass(v: string): string {
  if (v === "better") return "better";
  if (v === "worse") return "worse";
  if (v === "within noise") return "noise";
  return "";
}

function cell(text: string, cls = ""): string {
  const c = text === INVALID_CELL ? "inv" : cls;
  return `<td${c ? ` class="${c}"` : ""}>${esc(text)}</td>`;
}

function htmlTable(headers: string[], rows: string[]): string {
  return `<div class="tw"><table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table></div>`;
}

function figure(ch: ChartDoc): string {
  return `<figure class="chart-figure" id="chart-${esc(ch.id)}">${ch.svg}<figcaption>${esc(ch.title)}</figcaption></figure>`;
}

function pointSection(c: Comparison, row: ComparisonRow): string {
  const parts: string[] = [`<h3>${esc(row.model)} — ${esc(row.point)}</h3>`];
  for (const line of invalidLines(row)) parts.push(`<div class="invalid">${esc(line)}</div>`);
  const methods = [
    ...new Set(bothValid(row) ? row.deltas.map((d) => d.method).filter(Boolean) : []),
  ];
  parts.push(
    `<ul class="meta"><li>Sample: A ${esc(sampleText(row.a))}; B ${esc(sampleText(row.b))}</li><li>${esc(rateText(row))}</li>${methods.length ? `<li>95% CI: ${esc(methods.join("; "))}</li>` : ""}</ul>`,
  );
  parts.push(
    htmlTable(
      ["metric", `A: ${c.labels.a}`, `B: ${c.labels.b}`, "Δ B vs A [95% CI]", "verdict"],
      renderMetricRows(row).map(
        (m) =>
          `<tr>${cell(`${m.label} (${m.unit})`)}${cell(m.a)}${cell(m.b)}${cell(m.delta)}${cell(m.verdict, verdictClass(m.verdict))}</tr>`,
      ),
    ),
  );
  parts.push(
    htmlTable(
      ["server view", `A: ${c.labels.a}`, `B: ${c.labels.b}`],
      renderServerRows(row).map((s) => `<tr>${cell(s.label)}${cell(s.a)}${cell(s.b)}</tr>`),
    ),
  );
  return parts.join("\n");
}

function factTableHtml(t: FactTable): string {
  const parts = [`<section class="facts"><h2>${esc(t.title)}</h2>`];
  if (t.warning) parts.push(`<p class="invalid"><strong>Warning: ${esc(t.warning)}</strong></p>`);
  if (t.lead) parts.push(`<p>${esc(t.lead)}</p>`);
  if (t.rows.length)
    parts.push(
      htmlTable(
        t.headers,
        t.rows.map((r) => `<tr>${r.map((x) => cell(x)).join("")}</tr>`),
      ),
    );
  if (t.notes.length) parts.push(`<ul>${t.notes.map((n) => `<li>${esc(n)}</li>`).join("")}</ul>`);
  parts.push("</section>");
  return parts.join("");
}

export function renderHtml(c: Comparison): string {
  const title = `inferbench comparison: ${c.labels.a} vs ${c.labels.b}${c.emulated ? " (EMULATED)" : ""}`;
  const body: string[] = [];
  if (c.emulated)
    body.push(`<div class="banner" id="emulated-banner">${esc(EMULATED_BANNER)}</div>`);
  body.push(`<h1>${esc(title)}</h1>`);
  body.push(
    `<ul class="meta"><li>A: ${esc(c.labels.a)} — <code>${esc(c.sources.a)}</code>${esc(sideOrigin(c, "a"))}</li><li>B: ${esc(c.labels.b)} — <code>${esc(c.sources.b)}</code>${esc(sideOrigin(c, "b"))}</li><li>Workload: ${esc(c.workload)}</li><li>SLOs (goodput): ${esc(sloText(c))}</li><li>Created: ${esc(c.createdAt)}</li><li>${esc(ITL_DEFINITION)}</li><li>Δ is (B − A) / A in %, with its 95% confidence interval and the comparison's verdict (better / worse / within noise). Request rates on chart axes are achieved rates.</li></ul>`,
  );
  for (const t of [armsTable(c), ranTable(c), costTable(c)]) if (t) body.push(factTableHtml(t));
  if (c.notes.length) {
    body.push(`<h2>Findings</h2><ul>${c.notes.map((n) => `<li>${esc(n)}</li>`).join("")}</ul>`);
  }
  const groups = groupByModel(c);
  body.push("<h2>Summary</h2>");
  body.push(
    htmlTable(
      SUMMARY_HEADERS,
      groups.flatMap((g) =>
        g.rows.map((row) => {
          const v = verdictCounts(row);
          const heads = headlineCells(row).map((h) => {
            const plain = h.replace(/\*\*/g, "");
            const cls = verdictClass(plain.split(" ").pop() ?? "");
            return cell(plain, plain.endsWith("within noise") ? "noise" : cls);
          });
          return `<tr>${cell(g.model)}${cell(row.point)}${cell(`${row.a.requests} / ${row.b.requests}`)}${heads.join("")}${cell(bothValid(row) ? `${v.better} / ${v.worse} / ${v["within noise"]}` : INVALID_CELL)}</tr>`;
        }),
      ),
    ),
  );
  if (c.rows.some((r) => !bothValid(r))) {
    body.push(
      `<p class="invalid">INVALID rows: the load generator fell behind its schedule there, so those numbers are not results, are not compared, and are not plotted (hollow markers on chart axes).</p>`,
    );
  }
  for (const g of groups) {
    body.push(`<section class="model" id="model-${esc(g.slug)}"><h2>${esc(g.model)}</h2>`);
    for (const ch of buildModelCharts(c, g)) body.push(figure(ch));
    for (const row of g.rows) body.push(pointSection(c, row));
    body.push("</section>");
  }
  if (c.emulated) body.push(`<div class="banner">${esc(EMULATED_BANNER)}</div>`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style>
<script>${ERROR_HOOK}</script>
</head>
<body data-render-check="pending"${c.emulated ? ' data-emulated="true"' : ""}>
${body.join("\n")}
<script>${RENDER_CHECK}</script>
</body>
</html>
`;
}

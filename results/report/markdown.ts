/** report.md: a paste-able summary of a Comparison (GitHub-flavoured Markdown tables). */
import type { Comparison, ComparisonRow, Verdict } from "../compare-types.ts";
import { groupByModel } from "./charts.ts";
import { escapeMarkdown as md } from "./escape.ts";
import { fmtDeltaCi, fmtNum } from "./format.ts";
import {
  bothValid,
  findDelta,
  INVALID_CELL,
  ITL_DEFINITION,
  invalidLines,
  METRIC_ROWS,
  rateText,
  renderMetricRows,
  renderServerRows,
  sampleText,
} from "./metrics.ts";
import { armsTable, costTable, type FactTable, ranTable } from "./run-facts.ts";

export const EMULATED_BANNER =
  "EMULATED: these numbers come from emulated engines (engine-sim), not from GPUs. Do not read them as hardware performance.";

function table(headers: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line)].join("\n");
}

function verdictMd(v: string): string {
  return v === "better" || v === "worse" ? `**${v}**` : v;
}

/** " (EMULATED)" / " (measured)" per side, only when the sides differ — then readers must know which is which. */
/** Columns of the summary table, shared by report.md and report.html. */
export const SUMMARY_HEADERS = [
  "model",
  "load point",
  "n (A / B)",
  "TTFT p99 Δ",
  "ITL p99 Δ",
  "E2E p99 Δ",
  "req/s Δ",
  "verdicts (better / worse / noise)",
];

export function sideOrigin(c: Comparison, side: "a" | "b"): string {
  const sides = c.emulatedSides ?? { a: c.emulated, b: c.emulated };
  if (sides.a === sides.b) return "";
  return sides[side] ? " (EMULATED: engine-sim)" : " (measured on real engines)";
}

export function sloText(c: Comparison): string {
  const parts: string[] = [];
  if (c.slo.ttftMs !== undefined) parts.push(`TTFT ≤ ${fmtNum(c.slo.ttftMs)} ms`);
  if (c.slo.itlMs !== undefined) parts.push(`ITL ≤ ${fmtNum(c.slo.itlMs)} ms`);
  if (c.slo.e2eMs !== undefined) parts.push(`E2E ≤ ${fmtNum(c.slo.e2eMs)} ms`);
  return parts.length ? parts.join(", ") : "none (goodput not computed)";
}

const HEADLINE_KEYS = ["ttft_p99_ms", "itl_p99_ms", "e2e_p99_ms", "request_throughput"] as const;

/** Headline delta cells for the summary table. */
export function headlineCells(row: ComparisonRow): string[] {
  return HEADLINE_KEYS.map((key) => {
    if (!bothValid(row)) return INVALID_CELL;
    const def = METRIC_ROWS.find((d) => d.key === key)!;
    const d = findDelta(row, def);
    return d ? `${fmtDeltaCi(d.deltaPct, d.ciLowPct, d.ciHighPct)} ${verdictMd(d.verdict)}` : "—";
  });
}

export function verdictCounts(row: ComparisonRow): Record<Verdict, number> {
  const n: Record<Verdict, number> = { better: 0, worse: 0, "within noise": 0, "n/a": 0 };
  if (bothValid(row)) for (const d of row.deltas) n[d.verdict]++;
  return n;
}

function factTableMd(t: FactTable): string[] {
  const out = [`## ${md(t.title)}`, ""];
  if (t.warning) out.push(`> **Warning: ${md(t.warning)}**`, "");
  if (t.lead) out.push(md(t.lead), "");
  if (t.rows.length)
    out.push(
      table(
        t.headers.map(md),
        t.rows.map((r) => r.map(md)),
      ),
      "",
    );
  for (const n of t.notes) out.push(`- ${md(n)}`);
  if (t.notes.length) out.push("");
  return out;
}

export function renderMarkdown(c: Comparison): string {
  const A = md(c.labels.a);
  const B = md(c.labels.b);
  const out: string[] = [];
  if (c.emulated) out.push(`> **${EMULATED_BANNER}**`, "");
  out.push(`# inferbench comparison: ${A} (A) vs ${B} (B)${c.emulated ? " — EMULATED" : ""}`, "");
  out.push(
    `- A: ${A} — \`${c.sources.a.replace(/`/g, "'")}\`${sideOrigin(c, "a")}`,
    `- B: ${B} — \`${c.sources.b.replace(/`/g, "'")}\`${sideOrigin(c, "b")}`,
    `- Workload: ${md(c.workload)}`,
    `- SLOs (goodput): ${sloText(c)}`,
    `- Created: ${md(c.createdAt)}`,
    `- ${ITL_DEFINITION}`,
    "- Δ is (B − A) / A in %, with its 95% confidence interval and the comparison's verdict (better / worse / within noise). Latencies in ms.",
    "- Request rates are achieved rates (completed requests per second over the measured window).",
    "",
  );
  for (const t of [armsTable(c), ranTable(c), costTable(c)]) if (t) out.push(...factTableMd(t));
  if (c.notes.length) {
    out.push("## Findings", "", ...c.notes.map((n) => `- ${md(n)}`), "");
  }

  const groups = groupByModel(c);
  out.push("## Summary", "");
  out.push(
    table(
      SUMMARY_HEADERS,
      groups.flatMap((g) =>
        g.rows.map((row) => {
          const v = verdictCounts(row);
          return [
            md(g.model),
            md(row.point),
            `${row.a.requests} / ${row.b.requests}`,
            ...headlineCells(row),
            bothValid(row) ? `${v.better} / ${v.worse} / ${v["within noise"]}` : INVALID_CELL,
          ];
        }),
      ),
    ),
    "",
  );
  if (c.rows.some((r) => !bothValid(r))) {
    out.push(
      "INVALID rows: the load generator fell behind its schedule there, so those numbers are not results and are not compared.",
      "",
    );
  }

  for (const g of groups) {
    out.push(`## ${md(g.model)}`, "");
    for (const row of g.rows) {
      out.push(`### ${md(g.model)} — ${md(row.point)}`, "");
      for (const line of invalidLines(row)) out.push(`**${md(line)}**`, "");
      out.push(
        `- Sample: A ${sampleText(row.a)}; B ${sampleText(row.b)}`,
        `- ${md(rateText(row))}`,
      );
      const methods = [
        ...new Set(bothValid(row) ? row.deltas.map((d) => d.method).filter(Boolean) : []),
      ];
      if (methods.length) out.push(`- 95% CI: ${methods.map(md).join("; ")}`);
      out.push("");
      out.push(
        table(
          ["metric", `A: ${A}`, `B: ${B}`, "Δ B vs A [95% CI]", "verdict"],
          renderMetricRows(row).map((m) => [
            `${md(m.label)} (${md(m.unit)})`,
            m.a,
            m.b,
            m.delta,
            verdictMd(m.verdict),
          ]),
        ),
        "",
      );
      out.push("Server view:", "");
      out.push(
        table(
          ["server metric", `A: ${A}`, `B: ${B}`],
          renderServerRows(row).map((s) => [md(s.label), md(s.a), md(s.b)]),
        ),
        "",
      );
    }
  }
  if (c.emulated) out.push(`> **${EMULATED_BANNER}**`, "");
  return `${out.join("\n").trimEnd()}\n`;
}

/** The terminal summary printed at the end of a run or by `inferbench compare`. */
import { renderTable } from "../lib/table.ts";
import type { Comparison, MetricDelta, SideSummary } from "../results/compare-types.ts";

const f = (x: number | undefined, digits = 1) =>
  x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits);

function delta(d: MetricDelta | undefined): string {
  if (!d) return "-";
  const ci = Number.isFinite(d.ciLowPct) ? ` [${f(d.ciLowPct)}, ${f(d.ciHighPct)}]` : "";
  return `${d.deltaPct >= 0 ? "+" : ""}${f(d.deltaPct)}%${ci} ${d.verdict}`;
}

export function formatRunSummary(c: Comparison): string {
  const lines: string[] = [];
  if (c.emulated)
    lines.push(
      "*** EMULATED: engines are engine-sim (a calibrated model), not GPUs. Do not quote as GPU results. ***",
    );
  lines.push(`${c.labels.b} vs ${c.labels.a} — workload: ${c.workload}`);
  const side = (s: SideSummary) => [
    s.label + (s.valid ? "" : " (INVALID)"),
    f(s.ttftMs?.p50),
    f(s.ttftMs?.p99),
    f(s.itlMs?.p50, 2),
    f(s.e2eMs.p99),
    f(s.achievedRps, 2),
    f(s.outputTokensPerSec, 0),
    `${s.errors}/${s.requests}`,
  ];
  const rows: string[][] = [];
  for (const r of c.rows) {
    rows.push([r.model, r.point, ...side(r.a), ""]);
    rows.push(["", "", ...side(r.b), delta(r.deltas.find((d) => d.metric === "ttft_p99_ms"))]);
  }
  lines.push(
    renderTable(
      [
        "model",
        "load point",
        "arm",
        "TTFT p50 ms",
        "TTFT p99 ms",
        "ITL p50 ms",
        "E2E p99 ms",
        "req/s",
        "out tok/s",
        "errors",
        "TTFT p99 Δ [95% CI]",
      ],
      rows,
    ),
  );
  for (const n of c.notes) lines.push(`- ${n}`);
  return lines.join("\n");
}

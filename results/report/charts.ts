/**
 * The report's charts, built from a Comparison: per model TTFT and ITL vs achieved request rate,
 * latency percentile bars, per-replica load balance, and per load point the KV usage / queue depth
 * time series. Invalid (lagged) sides are never plotted as results: hollow markers on the x axis
 * in line charts, a note instead of bars elsewhere.
 */
import type { Comparison, ComparisonRow, Quantiles, SideSummary } from "../compare-types.ts";
import { fmtNum } from "./format.ts";
import {
  type BarSeries,
  barPanel,
  type ChartDoc,
  type InvalidMark,
  type LineSeries,
  linePanel,
  PALETTE,
  type ShareRow,
  sharePanel,
  svgDocument,
} from "./svg.ts";

export const SIDE_COLORS = { a: "#1f77b4", b: "#ff7f0e" } as const;
const SIDE_SHADES = {
  a: ["#9ecae1", "#4292c6", "#08519c"],
  b: ["#fdd0a2", "#fd8d3c", "#a63603"],
} as const;
const SIDE_MARKER = { a: "circle", b: "square" } as const;
export const ACHIEVED_RATE_LABEL = "achieved request rate (req/s)";
const INVALID_FOOTNOTE =
  "Hollow markers on the x axis: invalid load points (load generator fell behind) — not results.";
const SWEEP_FOOTNOTE =
  "Lines join points of the same sweep (concurrency points, request-rate points).";

export interface ModelGroup {
  model: string;
  /** File-name-safe, unique id for the model's charts. */
  slug: string;
  rows: ComparisonRow[];
}

const KIND_ORDER = { concurrency: 0, "request-rate": 1, trace: 2 } as const;

/** Rows grouped by model (first-appearance order), points sorted by kind then load value. */
export function groupByModel(c: Comparison): ModelGroup[] {
  const byModel = new Map<string, ComparisonRow[]>();
  for (const row of c.rows) {
    const list = byModel.get(row.model) ?? [];
    list.push(row);
    byModel.set(row.model, list);
  }
  const used = new Set<string>();
  return [...byModel.entries()].map(([model, rows], i) => {
    let base = model
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 40);
    if (!base) base = `model-${i + 1}`;
    let slug = base;
    for (let n = 2; used.has(slug); n++) slug = `${base}-${n}`;
    used.add(slug);
    const sorted = [...rows].sort(
      (x, y) => KIND_ORDER[x.pointKind] - KIND_ORDER[y.pointKind] || x.pointValue - y.pointValue,
    );
    return { model, slug, rows: sorted };
  });
}

function sides(c: Comparison): { key: "a" | "b"; label: string }[] {
  return [
    { key: "a", label: c.labels.a },
    { key: "b", label: c.labels.b },
  ];
}

function invalidTip(model: string, row: ComparisonRow, s: SideSummary): string {
  return `${model} · ${row.point} · ${s.label}: INVALID: load generator fell behind: ${s.invalidReason ?? "no reason given"}`;
}

/** Line chart of a latency metric's p50 and p99 vs achieved request rate, per side. */
function latencyVsRate(
  c: Comparison,
  g: ModelGroup,
  metric: "ttftMs" | "itlMs",
  id: string,
  title: string,
  yLabel: string,
): ChartDoc {
  const series: LineSeries[] = [];
  const invalid: InvalidMark[] = [];
  for (const { key, label } of sides(c)) {
    for (const q of ["p50", "p99"] as const) {
      series.push({
        name: `${label} ${q}`,
        color: SIDE_COLORS[key],
        dash: q === "p99",
        marker: SIDE_MARKER[key],
        points: g.rows.flatMap((row) => {
          const s = row[key];
          const v = s[metric]?.[q];
          if (!s.valid || v === undefined || !Number.isFinite(v) || !Number.isFinite(s.achievedRps))
            return [];
          return [
            {
              x: s.achievedRps,
              y: v,
              tip: `${row.point} · ${label} ${q}: ${fmtNum(v)} ms at ${fmtNum(s.achievedRps)} req/s`,
              group: row.pointKind,
            },
          ];
        }),
      });
    }
    for (const row of g.rows) {
      const s = row[key];
      if (s.valid) continue;
      invalid.push({
        x: Number.isFinite(s.achievedRps) ? s.achievedRps : 0,
        color: SIDE_COLORS[key],
        marker: SIDE_MARKER[key],
        label: invalidTip(g.model, row, s),
      });
    }
  }
  const w = 900;
  const h = 440;
  const body = linePanel(
    { x: 10, y: 34, w: w - 20, h: h - 54 },
    {
      xLabel: ACHIEVED_RATE_LABEL,
      yLabel,
      series,
      invalid,
    },
  );
  return svgDocument({
    id,
    kind: metric === "ttftMs" ? "ttft-vs-rate" : "itl-vs-load",
    title,
    width: w,
    height: h,
    emulated: c.emulated,
    body,
    footnote: invalid.length ? `${INVALID_FOOTNOTE} ${SWEEP_FOOTNOTE}` : SWEEP_FOOTNOTE,
  });
}

/** Latency percentile bars (p50/p90/p99 per side) per load point, one panel per metric. */
function percentileBars(c: Comparison, g: ModelGroup): ChartDoc {
  const metrics: { key: "ttftMs" | "itlMs" | "e2eMs"; name: string }[] = [
    { key: "ttftMs", name: "TTFT (ms)" },
    { key: "itlMs", name: "ITL (ms)" },
    { key: "e2eMs", name: "E2E latency (ms)" },
  ];
  const present = metrics.filter((m) =>
    g.rows.some((row) => row.a[m.key] !== undefined || row.b[m.key] !== undefined),
  );
  const groups = g.rows.map((row) => row.point);
  const notes = g.rows.map((row) => {
    const bad = sides(c)
      .filter(({ key }) => !row[key].valid)
      .map(({ label }) => label);
    return bad.length ? `${bad.join(" & ")}: INVALID` : undefined;
  });
  const w = 900;
  const panelH = 250;
  const h = 40 + present.length * panelH;
  const body = present
    .map((m, i) => {
      const series: BarSeries[] = sides(c).flatMap(({ key, label }) =>
        (["p50", "p90", "p99"] as const).map((q, qi) => ({
          name: `${label} ${q}`,
          color: SIDE_SHADES[key][qi]!,
          values: g.rows.map((row) => {
            const s = row[key];
            const qs: Quantiles | undefined = s[m.key];
            return s.valid ? qs?.[q] : undefined;
          }),
        })),
      );
      return barPanel(
        { x: 10, y: 34 + i * panelH, w: w - 20, h: panelH - 8 },
        { title: m.name, yLabel: m.name, groups, series, groupNotes: notes },
      );
    })
    .join("");
  return svgDocument({
    id: `percentiles-${g.slug}`,
    kind: "percentile-bars",
    title: `Latency percentiles — ${g.model}`,
    width: w,
    height: h,
    emulated: c.emulated,
    body,
  });
}

/** Share of requests per replica, one 100% bar per load point and side. */
function replicaShare(c: Comparison, g: ModelGroup): ChartDoc | undefined {
  const keys = [
    ...new Set(
      g.rows.flatMap((row) => [
        ...Object.keys(row.a.server.replicaShare),
        ...Object.keys(row.b.server.replicaShare),
      ]),
    ),
  ].sort();
  if (keys.length === 0) return undefined;
  const rows: ShareRow[] = g.rows.flatMap((row) =>
    sides(c).map(({ key, label }) => {
      const s = row[key];
      const rowLabel = `${row.point} · ${label}`;
      if (!s.valid)
        return { label: rowLabel, note: "INVALID (load generator fell behind): not plotted" };
      if (Object.keys(s.server.replicaShare).length === 0)
        return { label: rowLabel, note: "no per-replica data" };
      return { label: rowLabel, shares: s.server.replicaShare };
    }),
  );
  const w = 900;
  const legendRows = Math.ceil(keys.length / 6);
  const h = 90 + legendRows * 16 + rows.length * 24;
  const body = sharePanel(
    { x: 10, y: 34, w: w - 20, h: h - 40 },
    { keys, colors: keys.map((_, i) => PALETTE[i % PALETTE.length]!), rows },
  );
  return svgDocument({
    id: `replica-share-${g.slug}`,
    kind: "replica-share",
    title: `Load balance: share of requests per replica — ${g.model}`,
    width: w,
    height: h,
    emulated: c.emulated,
    body,
  });
}

/** KV usage and queue depth per replica over the point, both sides in one chart. */
function timeseries(
  c: Comparison,
  g: ModelGroup,
  row: ComparisonRow,
  index: number,
): ChartDoc | undefined {
  const withTs = sides(c).filter(({ key }) => row[key].valid && row[key].server.timeseries);
  const skipped = sides(c).filter(({ key }) => !row[key].valid && row[key].server.timeseries);
  if (withTs.length === 0) return undefined;
  const replicas = [
    ...new Set(
      withTs.flatMap(({ key }) => Object.keys(row[key].server.timeseries?.replicas ?? {})),
    ),
  ].sort();
  const build = (field: "kvUsage" | "queueDepth", scale: number): LineSeries[] =>
    withTs.flatMap(({ key, label }) => {
      const ts = row[key].server.timeseries!;
      return replicas.flatMap((rep, ri) => {
        const vals = ts.replicas[rep]?.[field];
        if (!vals) return [];
        const points = ts.tSec.flatMap((t, i) => {
          const v = vals[i];
          return v === undefined || !Number.isFinite(v) || !Number.isFinite(t)
            ? []
            : [{ x: t, y: v * scale }];
        });
        return [
          {
            name: `${label} ${rep}`,
            color: PALETTE[ri % PALETTE.length]!,
            dash: key === "b",
            markers: false,
            points,
          },
        ];
      });
    });
  const w = 900;
  const h = 620;
  const panelH = (h - 60) / 2;
  const xLabel = "time since load point start (s)";
  const body =
    linePanel(
      { x: 10, y: 34, w: w - 20, h: panelH },
      {
        title: "KV cache usage per replica",
        xLabel,
        yLabel: "KV cache usage (%)",
        series: build("kvUsage", 100),
      },
    ) +
    linePanel(
      { x: 10, y: 34 + panelH + 8, w: w - 20, h: panelH },
      {
        title: "Queue depth (waiting requests) per replica",
        xLabel,
        yLabel: "queue depth (requests)",
        series: build("queueDepth", 1),
      },
    );
  const foot = skipped.length
    ? `${skipped.map((s) => s.label).join(" & ")}: INVALID at this point — time series not plotted. Dashed: ${c.labels.b}.`
    : `Solid: ${c.labels.a}; dashed: ${c.labels.b}.`;
  return svgDocument({
    id: `timeseries-${g.slug}-${index + 1}`,
    kind: "timeseries",
    title: `KV usage and queue depth over time — ${g.model}, ${row.point}`,
    width: w,
    height: h,
    emulated: c.emulated,
    body,
    footnote: foot,
  });
}

/** The charts of one model, in display order. */
export function buildModelCharts(c: Comparison, g: ModelGroup): ChartDoc[] {
  const out: ChartDoc[] = [
    latencyVsRate(
      c,
      g,
      "ttftMs",
      `ttft-vs-rate-${g.slug}`,
      `TTFT p50/p99 vs achieved request rate — ${g.model}`,
      "TTFT (ms)",
    ),
  ];
  if (g.rows.some((row) => row.a.itlMs || row.b.itlMs)) {
    out.push(
      latencyVsRate(
        c,
        g,
        "itlMs",
        `itl-vs-load-${g.slug}`,
        `ITL p50/p99 vs load (achieved request rate) — ${g.model}`,
        "ITL (ms)",
      ),
    );
  }
  out.push(percentileBars(c, g));
  const share = replicaShare(c, g);
  if (share) out.push(share);
  g.rows.forEach((row, i) => {
    const ts = timeseries(c, g, row, i);
    if (ts) out.push(ts);
  });
  return out;
}

/** Every chart of the report, in display order. */
export function buildCharts(c: Comparison): ChartDoc[] {
  return groupByModel(c).flatMap((g) => buildModelCharts(c, g));
}

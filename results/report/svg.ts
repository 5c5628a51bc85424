/**
 * A small SVG chart kit (no chart library): line panels, grouped bar panels, 100%-share panels,
 * composed into one <svg> per chart. Every string is escaped; output is deterministic text so it
 * can be tested and rendered to PNG by a headless browser.
 */
import { escapeHtml as esc } from "./escape.ts";
import { fmtNum } from "./format.ts";

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export type MarkerShape = "circle" | "square" | "triangle" | "diamond";

export interface LinePoint {
  x: number;
  y: number;
  /** Tooltip text (an SVG <title>). */
  tip?: string;
  /** Lines join only points of the same group (e.g. a concurrency sweep vs a rate sweep). */
  group?: string;
}

export interface LineSeries {
  name: string;
  color: string;
  dash?: boolean;
  marker?: MarkerShape;
  /** Draw point markers (default true; off for dense time series). */
  markers?: boolean;
  points: LinePoint[];
}

/** A point that is not a result (e.g. the load generator fell behind): drawn hollow on the x axis. */
export interface InvalidMark {
  x: number;
  color: string;
  marker?: MarkerShape;
  label: string;
}

export interface LinePanelSpec {
  title?: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  invalid?: InvalidMark[];
}

export interface BarSeries {
  name: string;
  color: string;
  /** One value per group; undefined draws nothing (see groupNotes). */
  values: (number | undefined)[];
}

export interface BarPanelSpec {
  title?: string;
  yLabel: string;
  groups: string[];
  series: BarSeries[];
  /** Text shown instead of / above a group's bars (e.g. `B: INVALID`). */
  groupNotes?: (string | undefined)[];
}

export interface ShareRow {
  label: string;
  /** Share per key (0-1); undefined draws the note instead of a bar. */
  shares?: Record<string, number>;
  note?: string;
}

export interface SharePanelSpec {
  title?: string;
  keys: string[];
  colors: string[];
  rows: ShareRow[];
}

export const FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif";
export const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

/** Rough text width for layout (no font metrics in a pure function). */
export function textWidth(s: string, fontSize: number): number {
  return s.length * fontSize * 0.6;
}

function r(n: number): string {
  return (Math.round(n * 10) / 10).toString();
}

/**
 * "Nice" axis ticks covering [min, max]: steps of 1, 2, 2.5 or 5 × 10^k, about `count` of them.
 * Always returns at least two ticks, first ≤ min, last ≥ max.
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (max < min) [min, max] = [max, min];
  // A (near-)empty range gets padding, so the step never underflows.
  if (!(max - min > 1e-9 * Math.max(Math.abs(min), Math.abs(max), 1e-200))) {
    const pad = Math.abs(max) > 1e-9 ? Math.abs(max) * 0.5 : 1;
    min -= pad;
    max += pad;
    if (min < 0 && max - pad >= 0) min = 0;
  }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  const start = Math.floor(min / step + 1e-9) * step;
  const ticks: number[] = [];
  for (let v = start; v < max + step - 1e-9 * step; v += step) {
    ticks.push(Number(v.toPrecision(12)));
    if (ticks.length > 50) break;
  }
  if (ticks.length < 2) ticks.push(Number((start + step).toPrecision(12)));
  return ticks;
}

/** Axis tick label: integers with thousands separators, others with at most 6 significant digits. */
export function fmtTick(v: number): string {
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return String(Number(v.toPrecision(6)));
}

/** Linear map from a domain to a pixel range. */
export function scaleLinear(d0: number, d1: number, p0: number, p1: number): (v: number) => number {
  const span = d1 - d0 || 1;
  return (v) => p0 + ((v - d0) / span) * (p1 - p0);
}

function marker(shape: MarkerShape, x: number, y: number, color: string, hollow: boolean): string {
  const fill = hollow ? "#ffffff" : color;
  const common = `fill="${fill}" stroke="${color}" stroke-width="${hollow ? 2 : 1}"`;
  switch (shape) {
    case "square":
      return `<rect x="${r(x - 4)}" y="${r(y - 4)}" width="8" height="8" ${common}/>`;
    case "triangle":
      return `<path d="M${r(x)},${r(y - 5)}L${r(x + 5)},${r(y + 4)}L${r(x - 5)},${r(y + 4)}Z" ${common}/>`;
    case "diamond":
      return `<path d="M${r(x)},${r(y - 5)}L${r(x + 5)},${r(y)}L${r(x)},${r(y + 5)}L${r(x - 5)},${r(y)}Z" ${common}/>`;
    default:
      return `<circle cx="${r(x)}" cy="${r(y)}" r="4" ${common}/>`;
  }
}

function text(
  x: number,
  y: number,
  s: string,
  opts: {
    size?: number;
    anchor?: "start" | "middle" | "end";
    weight?: string;
    rotate?: boolean;
    fill?: string;
  } = {},
): string {
  const size = opts.size ?? 12;
  const rot = opts.rotate ? ` transform="rotate(-90 ${r(x)} ${r(y)})"` : "";
  const weight = opts.weight ? ` font-weight="${opts.weight}"` : "";
  return `<text x="${r(x)}" y="${r(y)}" font-size="${size}" text-anchor="${opts.anchor ?? "start"}" fill="${opts.fill ?? "#222"}"${weight}${rot}>${esc(s)}</text>`;
}

interface LegendItem {
  name: string;
  color: string;
  dash?: boolean;
  marker?: MarkerShape;
  kind: "line" | "swatch";
  markers?: boolean;
}

/** Horizontal legend that wraps; returns the markup and the height it used. */
function legend(items: LegendItem[], box: Box): { svg: string; h: number } {
  const parts: string[] = [];
  let x = box.x;
  let y = box.y + 10;
  for (const it of items) {
    const w = 28 + textWidth(it.name, 11) + 14;
    if (x + w > box.x + box.w && x > box.x) {
      x = box.x;
      y += 16;
    }
    if (it.kind === "line") {
      const dash = it.dash ? ' stroke-dasharray="5 3"' : "";
      parts.push(
        `<line x1="${r(x)}" y1="${r(y)}" x2="${r(x + 22)}" y2="${r(y)}" stroke="${it.color}" stroke-width="2"${dash}/>`,
      );
      if (it.markers !== false)
        parts.push(marker(it.marker ?? "circle", x + 11, y, it.color, false));
    } else {
      parts.push(
        `<rect x="${r(x + 5)}" y="${r(y - 5)}" width="12" height="10" fill="${it.color}"/>`,
      );
    }
    parts.push(text(x + 28, y + 4, it.name, { size: 11 }));
    x += w;
  }
  return { svg: `<g class="legend">${parts.join("")}</g>`, h: y - box.y + 12 };
}

function axes(
  plot: Box,
  xTicks: { v: number; px: number; label: string }[],
  yTicks: { v: number; py: number }[],
  xLabel: string | undefined,
  yLabel: string,
): string {
  const out: string[] = [];
  for (const t of yTicks) {
    out.push(
      `<line x1="${r(plot.x)}" y1="${r(t.py)}" x2="${r(plot.x + plot.w)}" y2="${r(t.py)}" stroke="#e5e5e5"/>`,
    );
    out.push(text(plot.x - 6, t.py + 4, fmtTick(t.v), { size: 11, anchor: "end" }));
  }
  for (const t of xTicks) {
    out.push(
      `<line x1="${r(t.px)}" y1="${r(plot.y + plot.h)}" x2="${r(t.px)}" y2="${r(plot.y + plot.h + 4)}" stroke="#444"/>`,
    );
    out.push(text(t.px, plot.y + plot.h + 16, t.label, { size: 11, anchor: "middle" }));
  }
  out.push(
    `<path d="M${r(plot.x)},${r(plot.y)}V${r(plot.y + plot.h)}H${r(plot.x + plot.w)}" fill="none" stroke="#444"/>`,
  );
  if (xLabel)
    out.push(text(plot.x + plot.w / 2, plot.y + plot.h + 34, xLabel, { anchor: "middle" }));
  out.push(text(plot.x - 46, plot.y + plot.h / 2, yLabel, { anchor: "middle", rotate: true }));
  return out.join("");
}

function panelTitle(box: Box, title: string | undefined): { svg: string; h: number } {
  if (!title) return { svg: "", h: 0 };
  return { svg: text(box.x, box.y + 14, title, { size: 13, weight: "bold" }), h: 22 };
}

/** A line chart panel: series of (x, y) with markers; invalid marks hollow on the x axis. */
export function linePanel(box: Box, spec: LinePanelSpec): string {
  const title = panelTitle(box, spec.title);
  const items: LegendItem[] = spec.series.map((s) => ({ ...s, kind: "line" }));
  const leg = legend(items, { x: box.x + 60, y: box.y + title.h, w: box.w - 70, h: 0 });
  const plot: Box = {
    x: box.x + 60,
    y: box.y + title.h + leg.h + 6,
    w: box.w - 75,
    h: box.h - title.h - leg.h - 6 - 44,
  };
  const xs = [
    ...spec.series.flatMap((s) => s.points.map((p) => p.x)),
    ...(spec.invalid ?? []).map((m) => m.x),
  ];
  const ys = spec.series.flatMap((s) => s.points.map((p) => p.y));
  const xT = niceTicks(0, xs.length ? Math.max(...xs) : 1);
  const yT = niceTicks(0, ys.length ? Math.max(...ys) : 1);
  const sx = scaleLinear(xT[0]!, xT[xT.length - 1]!, plot.x, plot.x + plot.w);
  const sy = scaleLinear(yT[0]!, yT[yT.length - 1]!, plot.y + plot.h, plot.y);
  const out: string[] = [title.svg, leg.svg];
  out.push(
    axes(
      plot,
      xT.map((v) => ({ v, px: sx(v), label: fmtTick(v) })),
      yT.map((v) => ({ v, py: sy(v) })),
      spec.xLabel,
      spec.yLabel,
    ),
  );
  if (ys.length === 0) {
    out.push(
      text(plot.x + plot.w / 2, plot.y + plot.h / 2, "no valid points", {
        anchor: "middle",
        fill: "#888",
      }),
    );
  }
  for (const s of spec.series) {
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    for (const grp of new Set(pts.map((p) => p.group ?? ""))) {
      const line = pts.filter((p) => (p.group ?? "") === grp);
      if (line.length < 2) continue;
      const d = line.map((p, i) => `${i ? "L" : "M"}${r(sx(p.x))},${r(sy(p.y))}`).join("");
      const dash = s.dash ? ' stroke-dasharray="6 4"' : "";
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    }
    if (s.markers === false) continue;
    for (const p of pts) {
      const tip = p.tip ? `<title>${esc(p.tip)}</title>` : "";
      out.push(
        `<g class="point" data-valid="true">${marker(s.marker ?? "circle", sx(p.x), sy(p.y), s.color, false)}${tip}</g>`,
      );
    }
  }
  for (const m of spec.invalid ?? []) {
    const px = sx(m.x);
    const py = plot.y + plot.h;
    out.push(
      `<g class="point invalid-marker" data-valid="false">${marker(m.marker ?? "circle", px, py, m.color, true)}<title>${esc(m.label)}</title>${text(px, py - 10, "invalid", { size: 10, anchor: "middle", fill: m.color })}</g>`,
    );
  }
  return `<g class="panel line-panel">${out.join("")}</g>`;
}

/** A grouped bar panel (one group per category, one bar per series). */
export function barPanel(box: Box, spec: BarPanelSpec): string {
  const title = panelTitle(box, spec.title);
  const items: LegendItem[] = spec.series.map((s) => ({
    name: s.name,
    color: s.color,
    kind: "swatch",
  }));
  const leg = legend(items, { x: box.x + 60, y: box.y + title.h, w: box.w - 70, h: 0 });
  const plot: Box = {
    x: box.x + 60,
    y: box.y + title.h + leg.h + 6,
    w: box.w - 75,
    h: box.h - title.h - leg.h - 6 - 26,
  };
  const vals = spec.series.flatMap((s) => s.values.filter((v): v is number => v !== undefined));
  const yT = niceTicks(0, vals.length ? Math.max(...vals) : 1);
  const sy = scaleLinear(yT[0]!, yT[yT.length - 1]!, plot.y + plot.h, plot.y);
  const n = Math.max(1, spec.groups.length);
  const gw = plot.w / n;
  const bw = Math.max(1, (gw * 0.8) / Math.max(1, spec.series.length));
  const out: string[] = [title.svg, leg.svg];
  out.push(
    axes(
      plot,
      spec.groups.map((g, i) => ({ v: i, px: plot.x + gw * (i + 0.5), label: g })),
      yT.map((v) => ({ v, py: sy(v) })),
      undefined,
      spec.yLabel,
    ),
  );
  spec.groups.forEach((g, gi) => {
    spec.series.forEach((s, si) => {
      const v = s.values[gi];
      if (v === undefined || !Number.isFinite(v)) return;
      const x = plot.x + gw * gi + gw * 0.1 + bw * si;
      const y = sy(Math.max(0, v));
      out.push(
        `<rect class="bar" x="${r(x)}" y="${r(y)}" width="${r(bw * 0.92)}" height="${r(plot.y + plot.h - y)}" fill="${s.color}"><title>${esc(`${g} · ${s.name}: ${fmtNum(v)}`)}</title></rect>`,
      );
    });
    const note = spec.groupNotes?.[gi];
    if (note) {
      out.push(
        text(plot.x + gw * (gi + 0.5), plot.y + 12, note, {
          size: 10,
          anchor: "middle",
          fill: "#b00020",
        }),
      );
    }
  });
  return `<g class="panel bar-panel">${out.join("")}</g>`;
}

/** Horizontal 100% bars: each row's shares per key (e.g. requests per replica). */
export function sharePanel(box: Box, spec: SharePanelSpec): string {
  const title = panelTitle(box, spec.title);
  const items: LegendItem[] = spec.keys.map((k, i) => ({
    name: k,
    color: spec.colors[i] ?? "#999",
    kind: "swatch",
  }));
  const leg = legend(items, { x: box.x + 4, y: box.y + title.h, w: box.w - 8, h: 0 });
  const labelW = Math.min(
    box.w * 0.45,
    Math.max(60, ...spec.rows.map((row) => textWidth(row.label, 11) + 10)),
  );
  const plot: Box = {
    x: box.x + labelW,
    y: box.y + title.h + leg.h + 6,
    w: box.w - labelW - 15,
    h: box.h - title.h - leg.h - 6 - 26,
  };
  const rh = plot.h / Math.max(1, spec.rows.length);
  const sx = scaleLinear(0, 1, plot.x, plot.x + plot.w);
  const out: string[] = [title.svg, leg.svg];
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    out.push(
      `<line x1="${r(sx(t))}" y1="${r(plot.y)}" x2="${r(sx(t))}" y2="${r(plot.y + plot.h)}" stroke="#e5e5e5"/>`,
    );
    out.push(text(sx(t), plot.y + plot.h + 16, `${t * 100}%`, { size: 11, anchor: "middle" }));
  }
  spec.rows.forEach((row, ri) => {
    const y = plot.y + rh * ri + rh * 0.15;
    const h = Math.max(2, rh * 0.7);
    out.push(text(plot.x - 6, y + h / 2 + 4, row.label, { size: 11, anchor: "end" }));
    if (!row.shares) {
      out.push(
        text(plot.x + 4, y + h / 2 + 4, row.note ?? "no data", { size: 11, fill: "#b00020" }),
      );
      return;
    }
    let acc = 0;
    spec.keys.forEach((k, ki) => {
      const v = row.shares?.[k] ?? 0;
      if (v <= 0) return;
      out.push(
        `<rect class="bar" x="${r(sx(acc))}" y="${r(y)}" width="${r(sx(acc + v) - sx(acc))}" height="${r(h)}" fill="${spec.colors[ki] ?? "#999"}" stroke="#fff" stroke-width="0.5"><title>${esc(`${row.label} · ${k}: ${(v * 100).toFixed(1)}%`)}</title></rect>`,
      );
      acc += v;
    });
  });
  return `<g class="panel share-panel">${out.join("")}</g>`;
}

export interface ChartDoc {
  /** Stable id, also the PNG file name (`<id>.png`). */
  id: string;
  kind: string;
  title: string;
  width: number;
  height: number;
  svg: string;
}

/** Wraps panels in one <svg>, with the chart title and, for emulated data, an EMULATED tag. */
export function svgDocument(opts: {
  id: string;
  kind: string;
  title: string;
  width: number;
  height: number;
  emulated: boolean;
  body: string;
  footnote?: string;
}): ChartDoc {
  const { width: w, height: h } = opts;
  const parts = [
    `<rect x="0" y="0" width="${w}" height="${h}" fill="#ffffff"/>`,
    text(12, 22, opts.title, { size: 15, weight: "bold" }),
  ];
  if (opts.emulated) {
    parts.push(
      `<g class="emulated-tag"><rect x="${w - 112}" y="6" width="104" height="22" rx="3" fill="#b00020"/>${text(w - 60, 22, "EMULATED", { size: 13, anchor: "middle", weight: "bold", fill: "#ffffff" })}</g>`,
    );
  }
  parts.push(opts.body);
  if (opts.footnote) parts.push(text(12, h - 8, opts.footnote, { size: 10, fill: "#555" }));
  const svg = `<svg class="chart" data-chart="${esc(opts.id)}" data-kind="${esc(opts.kind)}" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(opts.title)}" font-family="${FONT}">${parts.join("")}</svg>`;
  return { id: opts.id, kind: opts.kind, title: opts.title, width: w, height: h, svg };
}

/**
 * `--generate-plots`: simple standalone SVG charts under `<run>/plots/` (GenAI-Perf writes
 * HTML/JPEG with plotly; the file formats differ, the charts are the same kind).
 */
import { join } from "node:path";
import { writeFileAtomic } from "../../lib/atomic.ts";
import type { RequestMetrics } from "./metrics.ts";

export interface ScatterSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  points: [number, number][];
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

export function scatterSvg(spec: ScatterSpec, width = 640, height = 420): string {
  const m = { l: 70, r: 20, t: 40, b: 50 };
  const xs = spec.points.map((p) => p[0]);
  const ys = spec.points.map((p) => p[1]);
  const [x0, x1] = [Math.min(0, ...xs), Math.max(1e-9, ...xs)];
  const [y0, y1] = [Math.min(0, ...ys), Math.max(1e-9, ...ys)];
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0 || 1)) * (width - m.l - m.r);
  const sy = (y: number) => height - m.b - ((y - y0) / (y1 - y0 || 1)) * (height - m.t - m.b);
  const ticks = (a: number, b: number) => [0, 0.25, 0.5, 0.75, 1].map((f) => a + f * (b - a));
  const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  let out = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`;
  out += `<rect width="100%" height="100%" fill="white"/>`;
  out += `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${esc(spec.title)}</text>`;
  out += `<line x1="${m.l}" y1="${height - m.b}" x2="${width - m.r}" y2="${height - m.b}" stroke="black"/>`;
  out += `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${height - m.b}" stroke="black"/>`;
  for (const t of ticks(x0, x1))
    out += `<text x="${sx(t)}" y="${height - m.b + 15}" text-anchor="middle">${fmt(t)}</text>`;
  for (const t of ticks(y0, y1))
    out += `<text x="${m.l - 5}" y="${sy(t) + 4}" text-anchor="end">${fmt(t)}</text>`;
  out += `<text x="${width / 2}" y="${height - 10}" text-anchor="middle">${esc(spec.xLabel)}</text>`;
  out += `<text x="15" y="${height / 2}" text-anchor="middle" transform="rotate(-90 15 ${height / 2})">${esc(spec.yLabel)}</text>`;
  for (const [x, y] of spec.points)
    out += `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="#1f77b4" fill-opacity="0.6"/>`;
  return `${out}</svg>\n`;
}

export async function writePlots(
  dir: string,
  metrics: readonly RequestMetrics[],
): Promise<string[]> {
  const specs: [string, ScatterSpec][] = [
    [
      "time_to_first_token_vs_input_sequence_length.svg",
      {
        title: "Time to First Token vs Input Sequence Length",
        xLabel: "Input Sequence Length (tokens)",
        yLabel: "Time to First Token (ms)",
        points: metrics.map((m) => [m.isl, m.ttftNs / 1e6]),
      },
    ],
    [
      "request_latency_vs_input_sequence_length.svg",
      {
        title: "Request Latency vs Input Sequence Length",
        xLabel: "Input Sequence Length (tokens)",
        yLabel: "Request Latency (ms)",
        points: metrics.map((m) => [m.isl, m.latencyNs / 1e6]),
      },
    ],
    [
      "output_sequence_length_vs_input_sequence_length.svg",
      {
        title: "Output vs Input Sequence Length",
        xLabel: "Input Sequence Length (tokens)",
        yLabel: "Output Sequence Length (tokens)",
        points: metrics.map((m) => [m.isl, m.osl]),
      },
    ],
    [
      "inter_token_latency_vs_output_sequence_length.svg",
      {
        title: "Inter Token Latency vs Output Sequence Length",
        xLabel: "Output Sequence Length (tokens)",
        yLabel: "Inter Token Latency (ms)",
        points: metrics.filter((m) => m.itlNs !== undefined).map((m) => [m.osl, m.itlNs! / 1e6]),
      },
    ],
  ];
  const written: string[] = [];
  for (const [name, spec] of specs) {
    const p = join(dir, "plots", name);
    await writeFileAtomic(p, scatterSvg(spec));
    written.push(p);
  }
  return written;
}

/**
 * Report sections about the run rather than one load point: what differs between the arms (from
 * their plans) and what the run cost. Pure: Comparison in, headings and table cells out, for
 * report.md and report.html alike.
 */
import type { Comparison } from "../compare-types.ts";

export interface FactTable {
  title: string;
  /** A line above the table (a warning is rendered prominently). */
  lead?: string;
  warning?: string;
  headers: string[];
  rows: string[][];
  /** Lines below the table. */
  notes: string[];
}

/** "What differs between the arms": one row per differing setting, grouped by factor. */
export function armsTable(c: Comparison): FactTable | undefined {
  if (!c.arms) return undefined;
  const { differences, warning } = c.arms;
  return {
    title: "What differs between the arms",
    lead: `Computed from the two arms' plans. ${
      differences.length
        ? `A delta below can be attributed to ${new Set(differences.map((d) => d.factor)).size === 1 ? "this one factor" : "none of these factors alone"}.`
        : ""
    }`.trim(),
    ...(warning ? { warning } : {}),
    headers: ["factor", "setting", `A: ${c.labels.a}`, `B: ${c.labels.b}`],
    rows: differences.map((d) => [d.factor, d.what, d.a, d.b]),
    notes: [],
  };
}

/** "What ran": per arm, the engines' own version answers and the image each service ran. */
export function ranTable(c: Comparison): FactTable | undefined {
  const r = c.ran;
  if (
    !r ||
    (!r.a.engineVersions.length && !r.b.engineVersions.length && !r.a.images && !r.b.images)
  )
    return undefined;
  const rows: string[][] = [
    [
      "engine versions (GET /version)",
      r.a.engineVersions.join("; ") || "—",
      r.b.engineVersions.join("; ") || "—",
    ],
  ];
  const services = [
    ...new Set([...Object.keys(r.a.images ?? {}), ...Object.keys(r.b.images ?? {})]),
  ].sort();
  for (const s of services)
    rows.push([`${s} image`, r.a.images?.[s] ?? "—", r.b.images?.[s] ?? "—"]);
  return {
    title: "What ran",
    lead: "As the engines and the host reported it, beside what the plans asked for.",
    headers: ["", `A: ${c.labels.a}`, `B: ${c.labels.b}`],
    rows,
    notes: [],
  };
}

const usd = (x: number | undefined, digits: number) =>
  x === undefined || !Number.isFinite(x) ? "—" : `$${x.toFixed(digits)}`;

/** Digits that keep a few significant figures of small prices ($0.000123 per request). */
function priceDigits(xs: (number | undefined)[]): number {
  const min = Math.min(...xs.filter((x): x is number => x !== undefined && x > 0));
  if (!Number.isFinite(min)) return 2;
  return Math.min(8, Math.max(2, 2 - Math.floor(Math.log10(min))));
}

/** "Cost": the run's window, GPU-hours and $, and per point the price of output and of good requests. */
export function costTable(c: Comparison): FactTable | undefined {
  const k = c.cost;
  if (!k) return undefined;
  const w = k.window;
  const lead = [
    `Priced at ${usd(k.hourlyUsd, 2)}/h (ESTIMATE; ${k.source}).`,
    w
      ? `Billing window ${w.start} → ${w.end}: ${w.hours.toFixed(2)} h${k.gpuHours !== undefined ? `, ${k.gpuHours.toFixed(2)} GPU-hours (${k.gpus} GPUs billed)` : ""}, ~${usd(k.totalUsd, 2)} for the whole run (provisioning, weight loading and both arms).`
      : "The run recorded no complete billing window (still up, or kept): no total.",
  ].join(" ");
  const tok = c.rows.flatMap((r) => [r.a.usdPerMillionOutputTokens, r.b.usdPerMillionOutputTokens]);
  const req = c.rows.flatMap((r) => [r.a.usdPerGoodRequest, r.b.usdPerGoodRequest]);
  const dt = priceDigits(tok);
  const dr = priceDigits(req);
  const good = Object.keys(c.slo).length
    ? "good request (meets every SLO)"
    : "completed request (no SLOs)";
  return {
    title: "Cost",
    lead,
    headers: [
      "model",
      "load point",
      `$/1M output tokens A: ${c.labels.a}`,
      `B: ${c.labels.b}`,
      `$ per ${good} A`,
      "B",
    ],
    rows: c.rows.map((r) => [
      r.model,
      r.point,
      usd(r.a.usdPerMillionOutputTokens, dt),
      usd(r.b.usdPerMillionOutputTokens, dt),
      usd(r.a.usdPerGoodRequest, dr),
      usd(r.b.usdPerGoodRequest, dr),
    ]),
    notes: [
      "Per point: the host's price per second ÷ the arm's measured output-token rate (or goodput) at that point. Both arms ran on the same host, one after the other, so both are priced at the whole host's rate; INVALID points are not priced.",
    ],
  };
}

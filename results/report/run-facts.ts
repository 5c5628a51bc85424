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

/** Writes report.md / report.html / charts for a comparison; returns the report.html path. */
import { join } from "node:path";
import type { Comparison } from "../results/compare-types.ts";
import { writeReport } from "../results/report/index.ts";

export async function writeReportFiles(c: Comparison, dir: string): Promise<string | undefined> {
  await writeReport(c, dir);
  return join(dir, "report.html");
}

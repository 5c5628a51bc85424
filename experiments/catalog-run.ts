/**
 * A catalog run: `inferbench experiment run FILE` as one resumable unit. Its folder
 * (`<runs>/experiments-<id>/`) holds `catalog-run.json` (what was asked, each experiment's run
 * id and outcome) and, per experiment, the rendered snapshot `<name>/experiment.json` written
 * before anything ran. A snapshot is immutable: a resume re-renders every experiment and refuses,
 * with the diff, when one would now be something else (a stack file or the catalog changed).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { writeFileAtomicSync } from "../lib/atomic.ts";
import { UserError } from "../lib/errors.ts";
import { redactObject } from "../lib/redact.ts";
import type { ExperimentPlan } from "../runner/plan-file.ts";
import type { AutoRates } from "./auto-rates.ts";

export const CATALOG_RUN_FILE = "catalog-run.json";
export const CATALOG_RUN_PREFIX = "experiments-";

const outcome = z.enum(["pending", "running", "complete", "invalid", "failed", "interrupted"]);
export type ExperimentOutcome = z.infer<typeof outcome>;

const recordSchema = z.object({
  kind: z.literal("inferbench-catalog-run"),
  schemaVersion: z.literal(1),
  id: z.string(),
  file: z.string(),
  filter: z.string().optional(),
  set: z.array(z.string()),
  quick: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
  experiments: z.array(
    z.object({
      name: z.string(),
      status: outcome,
      runId: z.string().optional(),
      error: z.string().optional(),
    }),
  ),
});
export type CatalogRunRecord = z.infer<typeof recordSchema>;

/** Outcomes a resume does not run again: the run finished (an INVALID point is a finding). */
export const FINISHED: ReadonlySet<ExperimentOutcome> = new Set(["complete", "invalid"]);

/**
 * The snapshot of one experiment: its plan as `--dry-run` writes it (secrets redacted), and for
 * a sweep of auto rates the settings its load points will come from.
 */
export function snapshotText(plan: ExperimentPlan, autoRates?: AutoRates): string {
  return `${JSON.stringify({ ...redactObject(plan), ...(autoRates ? { autoRates } : {}) }, null, 2)}\n`;
}

export function readCatalogRun(dir: string): CatalogRunRecord {
  const file = join(dir, CATALOG_RUN_FILE);
  if (!existsSync(file))
    throw new UserError(`${dir} is not a catalog run (no ${CATALOG_RUN_FILE})`, {
      exitCode: 2,
      hint: `catalog runs are the ${CATALOG_RUN_PREFIX}<id> folders that \`inferbench experiment run\` prints`,
    });
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new UserError(`${file}: not JSON (${(err as Error).message})`, { exitCode: 2 });
  }
  const r = recordSchema.safeParse(v);
  if (!r.success)
    throw new UserError(`${file}: not a catalog run record: ${r.error.issues[0]?.message}`, {
      exitCode: 2,
    });
  return r.data;
}

export function writeCatalogRun(dir: string, rec: CatalogRunRecord): void {
  writeFileAtomicSync(
    join(dir, CATALOG_RUN_FILE),
    `${JSON.stringify({ ...rec, updatedAt: new Date().toISOString() }, null, 2)}\n`,
  );
}

type Op = { sign: " " | "-" | "+"; line: string; at: number };

/** The edit script from a to b by longest common subsequence (snapshots are a few hundred lines). */
function editScript(a: readonly string[], b: readonly string[]): Op[] {
  const n = a.length;
  const m = b.length;
  const w = m + 1;
  const lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i * w + j] =
        a[i] === b[j]
          ? lcs[(i + 1) * w + j + 1]! + 1
          : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!);
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ sign: " ", line: a[i]!, at: i + 1 });
      i++;
      j++;
    } else if (i < n && (j === m || lcs[(i + 1) * w + j]! >= lcs[i * w + j + 1]!)) {
      ops.push({ sign: "-", line: a[i]!, at: i + 1 });
      i++;
    } else {
      ops.push({ sign: "+", line: b[j]!, at: i + 1 });
      j++;
    }
  }
  return ops;
}

/**
 * A line diff for a refusal: each changed region as a hunk (`@@ line N @@`, N a line of the
 * stored text) with a line of context before it, `-` stored and `+` now; at most `max` changed
 * lines are shown, the rest counted.
 */
export function lineDiff(before: string, after: string, max = 24): string[] {
  if (before === after) return [];
  const ops = editScript(before.split("\n"), after.split("\n"));
  const out: string[] = [];
  let shown = 0;
  let hidden = 0;
  for (let k = 0; k < ops.length; k++) {
    const op = ops[k]!;
    if (op.sign === " ") continue;
    if (shown >= max) {
      hidden++;
      continue;
    }
    const prev = ops[k - 1];
    if (!prev || prev.sign === " ") {
      out.push(`@@ line ${op.at} @@`);
      if (prev) out.push(`  ${prev.line}`);
    }
    out.push(`${op.sign} ${op.line}`);
    shown++;
  }
  if (hidden) out.push(`… ${hidden} more changed line(s)`);
  return out;
}

/**
 * What a resume finds against the stored snapshots: the experiments whose rendering changed (with
 * the diff), the ones that left or joined the selection. Empty: the resume may go on.
 */
export function snapshotChanges(
  rec: CatalogRunRecord,
  now: ReadonlyMap<string, string>,
  stored: (name: string) => string | undefined,
): string[] {
  const out: string[] = [];
  const names = new Set(rec.experiments.map((x) => x.name));
  for (const x of rec.experiments) {
    const text = now.get(x.name);
    if (text === undefined) {
      out.push(`${x.name}: no longer in the file (or no longer matches --filter)`);
      continue;
    }
    const old = stored(x.name);
    if (old === undefined) {
      out.push(`${x.name}: its snapshot ${x.name}/experiment.json is missing`);
      continue;
    }
    const diff = lineDiff(old, text);
    if (diff.length)
      out.push(`${x.name}: renders differently now:\n${diff.map((l) => `    ${l}`).join("\n")}`);
  }
  for (const name of now.keys())
    if (!names.has(name)) out.push(`${name}: new in the file since the run started`);
  return out;
}

/**
 * `inferbench experiment run` as one resumable catalog run: snapshots first (each experiment as
 * rendered now), then the experiments one after the other, each its own run (`inferbench run`);
 * the record says after each one what became of it. `--resume ID` re-renders every experiment
 * and refuses, with the diff, when one changed; otherwise finished experiments are skipped and
 * interrupted or failed ones resumed from their completed points.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  type CatalogExperiment,
  loadCatalog,
  planCatalogExperiment,
} from "../experiments/catalog.ts";
import {
  CATALOG_RUN_PREFIX,
  type CatalogRunRecord,
  type ExperimentOutcome,
  FINISHED,
  readCatalogRun,
  snapshotChanges,
  snapshotText,
  writeCatalogRun,
} from "../experiments/catalog-run.ts";
import { writeFileAtomicSync } from "../lib/atomic.ts";
import { errorMessage, UserError } from "../lib/errors.ts";
import { logger } from "../lib/logger.ts";
import { newRunId } from "../lib/run-id.ts";
import { DEFAULT_RUNS_DIR, RunStore } from "../results/store.ts";
import { executeRun } from "./execute-run.ts";

export interface CatalogRunOptions {
  file: string;
  filter?: string;
  set: string[];
  quick: boolean;
  keep: boolean;
  runsDir?: string;
  resume?: string;
  /** Each experiment's run folder once it exists, and the catalog run's own (for --upload). */
  onRun?: (runId: string, dir: string) => void;
  onCatalogDir?: (dir: string) => void;
}

/** The experiment with the run's own --set and --quick on top of the catalog's. */
export function withRunOptions(
  x: CatalogExperiment,
  o: { set: readonly string[]; quick: boolean },
): CatalogExperiment {
  return { ...x, overrides: [...x.overrides, ...o.set], quick: o.quick || x.quick };
}

/** The experiments whose names match the filter (a regular expression), refused when none do. */
export function selectExperiments(file: string, filter: string | undefined): CatalogExperiment[] {
  let re: RegExp | undefined;
  try {
    re = filter === undefined ? undefined : new RegExp(filter);
  } catch (err) {
    throw new UserError(`--filter: not a regular expression: ${errorMessage(err)}`);
  }
  const all = loadCatalog(file);
  const xs = re ? all.filter((x) => re.test(x.name)) : all;
  if (xs.length === 0)
    throw new UserError(`--filter ${filter}: no experiment of ${file} matches`, {
      hint: `experiments: ${all.map((x) => x.name).join(", ")}`,
    });
  return xs;
}

/** Each experiment's snapshot as it renders now, by name. */
function renderAll(xs: readonly CatalogExperiment[]): Map<string, string> {
  return new Map(xs.map((x) => [x.name, snapshotText(planCatalogExperiment(x).plan, x.autoRates)]));
}

/** A new catalog run: snapshots written, then the record (every experiment pending). */
function startRecord(
  o: CatalogRunOptions,
  runsDir: string,
): { dir: string; rec: CatalogRunRecord } {
  const xs = selectExperiments(o.file, o.filter).map((x) => withRunOptions(x, o));
  const snapshots = renderAll(xs);
  const id = newRunId();
  const dir = join(runsDir, `${CATALOG_RUN_PREFIX}${id}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of snapshots)
    writeFileAtomicSync(join(dir, name, "experiment.json"), text);
  const now = new Date().toISOString();
  const rec: CatalogRunRecord = {
    kind: "inferbench-catalog-run",
    schemaVersion: 1,
    id,
    file: resolve(o.file),
    ...(o.filter !== undefined ? { filter: o.filter } : {}),
    set: o.set,
    quick: o.quick,
    createdAt: now,
    updatedAt: now,
    experiments: xs.map((x) => ({ name: x.name, status: "pending" })),
  };
  writeCatalogRun(dir, rec);
  return { dir, rec };
}

/** An earlier catalog run, checked: same file, its own options, every snapshot unchanged. */
function resumeRecord(
  o: CatalogRunOptions,
  runsDir: string,
  id: string,
): { dir: string; rec: CatalogRunRecord } {
  const dir = join(runsDir, id.startsWith(CATALOG_RUN_PREFIX) ? id : `${CATALOG_RUN_PREFIX}${id}`);
  const rec = readCatalogRun(dir);
  if (resolve(o.file) !== rec.file)
    throw new UserError(`catalog run ${rec.id} ran ${rec.file}, not ${resolve(o.file)}`, {
      exitCode: 2,
      hint: `resume it with: inferbench experiment run ${rec.file} --resume ${rec.id}`,
    });
  if (o.filter !== undefined || o.set.length || o.quick)
    throw new UserError("--resume takes the run's own --filter, --set and --quick; give none", {
      exitCode: 2,
      hint: `this run: ${[rec.filter ? `--filter ${rec.filter}` : "", ...rec.set.map((s) => `--set ${s}`), rec.quick ? "--quick" : ""].filter(Boolean).join(" ") || "no options"}`,
    });
  const now = renderAll(selectExperiments(rec.file, rec.filter).map((x) => withRunOptions(x, rec)));
  const changes = snapshotChanges(rec, now, (name) => {
    const f = join(dir, name, "experiment.json");
    return existsSync(f) ? readFileSync(f, "utf8") : undefined;
  });
  if (changes.length)
    throw new UserError(
      `catalog run ${rec.id} cannot resume: its experiments would not be what they were\n${changes.map((c) => `  ${c}`).join("\n")}`,
      {
        exitCode: 2,
        hint: "a snapshot is immutable: undo the change, or start a new catalog run (without --resume)",
      },
    );
  return { dir, rec };
}

/** The earlier run of an experiment to resume, if it has one that can be resumed. */
function resumable(runId: string | undefined, runsDir: string): string | "complete" | undefined {
  if (!runId) return undefined;
  try {
    const status = RunStore.open(runId, runsDir).readManifest().status;
    return status === "complete" ? "complete" : runId;
  } catch {
    return undefined; // its folder is gone: the experiment starts afresh
  }
}

/** Runs (or resumes) the catalog run; returns the outcome lines and the worst exit status. */
export async function runCatalog(
  o: CatalogRunOptions,
): Promise<{ lines: string[]; exitCode: number }> {
  const runsDir = o.runsDir ?? DEFAULT_RUNS_DIR;
  const { dir, rec } = o.resume ? resumeRecord(o, runsDir, o.resume) : startRecord(o, runsDir);
  process.stdout.write(`catalog run ${rec.id}: ${dir}\n`);
  o.onCatalogDir?.(dir);
  const byName = new Map(
    selectExperiments(rec.file, rec.filter).map((x) => [x.name, withRunOptions(x, rec)]),
  );
  const lines: string[] = [];
  let worst = 0;
  const save = (k: number, status: ExperimentOutcome, more: { runId?: string; error?: string }) => {
    const { error: _e, ...prev } = rec.experiments[k]!;
    rec.experiments[k] = { ...prev, status, ...more };
    writeCatalogRun(dir, rec);
  };
  for (const [k, entry] of rec.experiments.entries()) {
    const x = byName.get(entry.name)!;
    if (FINISHED.has(entry.status)) {
      lines.push(
        `${x.name}: ${entry.status === "invalid" ? "some points INVALID" : "ok"}, run ${entry.runId} (done before)`,
      );
      continue;
    }
    const earlier = resumable(entry.runId, runsDir);
    if (earlier === "complete") {
      save(k, "complete", {});
      lines.push(`${x.name}: ok, run ${entry.runId} (done before)`);
      continue;
    }
    logger.info(
      `experiment ${k + 1}/${rec.experiments.length}: ${x.name} (${x.stacks.join(", ")})${earlier ? `, resuming run ${earlier}` : ""}`,
    );
    try {
      const r = await executeRun({
        stacks: x.stacks,
        overrides: x.overrides,
        quick: x.quick,
        interleave: x.interleave,
        ...(x.autoRates ? { autoRates: x.autoRates } : {}),
        ...(earlier ? { resume: earlier } : {}),
        ...(o.runsDir ? { runsDir: o.runsDir } : {}),
        onStart: (runId, runDir) => {
          save(k, "running", { runId });
          o.onRun?.(runId, runDir);
        },
        keep: o.keep,
      });
      save(k, "complete", { runId: r.runId });
      lines.push(`${x.name}: ok, run ${r.runId}`);
    } catch (err) {
      const code = err instanceof UserError ? err.exitCode : 1;
      const first = errorMessage(err).split("\n")[0]!;
      const status: ExperimentOutcome =
        code === 3 ? "invalid" : code === 130 ? "interrupted" : "failed";
      save(k, status, status === "invalid" ? {} : { error: first });
      lines.push(`${x.name}: ${code === 3 ? "some points INVALID" : `failed (${first})`}`);
      worst = Math.max(worst, code);
      if (code === 130) {
        lines.push(
          ...rec.experiments.slice(k + 1).map((y) => `${y.name}: not started (interrupted)`),
        );
        lines.push(`continue with: inferbench experiment run ${rec.file} --resume ${rec.id}`);
        break;
      }
    }
  }
  return { lines, exitCode: worst };
}

/**
 * `inferbench experiment list|run FILE`: the named experiments of a catalog file
 * (experiments/*.yaml, see experiments/catalog.ts), expanded and checked before anything runs.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { type CatalogExperiment, planCatalogExperiment } from "../../experiments/catalog.ts";
import { snapshotText } from "../../experiments/catalog-run.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { UserError } from "../../lib/errors.ts";
import { newRunId } from "../../lib/run-id.ts";
import { DEFAULT_RUNS_DIR } from "../../results/store.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import { collect, parseOptions } from "../options.ts";
import { runCatalog, selectExperiments, withRunOptions } from "../run-catalog.ts";
import { withUpload } from "../upload.ts";
import { planOutFiles } from "./plan.ts";

const listSchema = z.object({ filter: z.string().optional() });
const runSchema = z.object({
  filter: z.string().optional(),
  set: z.array(z.string()).default([]),
  quick: z.boolean().default(false),
  dryRun: z.boolean().default(false),
  keep: z.boolean().default(false),
  runsDir: z.string().min(1).optional(),
  resume: z.string().min(1).optional(),
  upload: z.string().min(1).optional(),
});

/**
 * Every experiment planned as a run would plan it and rendered as its target would deploy it,
 * all in memory first (a refusal writes nothing), then written: `<name>/experiment.json` and
 * `<name>/<arm>/…` as `plan --out` writes them.
 */
async function dryRun(
  xs: CatalogExperiment[],
  opts: { set: string[]; quick: boolean },
  dir: string,
): Promise<number> {
  const files: Record<string, string> = {};
  for (const x0 of xs) {
    const x = withRunOptions(x0, opts);
    const { plans, configs, plan } = planCatalogExperiment(x);
    files[`${x.name}/experiment.json`] = snapshotText(plan, x.autoRates);
    for (const [k, p] of plans.entries()) {
      const stack = x.stacks[Math.min(k, x.stacks.length - 1)]!;
      const more = x.stacks.length === 1 ? [`mode=${p.mode}`] : [];
      const out = await planOutFiles(
        p,
        stack,
        [...x.overrides, ...more],
        configs[p.mode] as StackConfig,
      );
      for (const [rel, text] of Object.entries(out)) files[`${x.name}/${p.mode}/${rel}`] = text;
    }
  }
  for (const [rel, text] of Object.entries(files)) await writeFileAtomic(join(dir, rel), text);
  return Object.keys(files).length;
}

export function registerExperiment(program: Command): void {
  const cmd = program
    .command("experiment")
    .description("Named experiments from a catalog file (experiments/*.yaml): list or run them");
  cmd
    .command("list <file>")
    .description("Print each experiment the file expands into, its stacks and what it overrides")
    .option("--filter <regex>", "only experiments whose name matches")
    .action((file: string, raw: unknown) => {
      const opts = parseOptions(listSchema, raw);
      for (const x of selectExperiments(file, opts.filter)) {
        const from = x.extends.length ? ` (extends ${x.extends.join(" → ")})` : "";
        process.stdout.write(
          `${x.name}${from}: stacks ${x.stacks.join(", ")}${x.quick ? ", quick" : ""}\n`,
        );
        if (x.description) process.stdout.write(`  ${x.description}\n`);
        for (const o of x.overrides) process.stdout.write(`  --set ${o}\n`);
        const a = x.autoRates;
        if (a)
          process.stdout.write(
            `  auto rates: ${a.fractions.map((f) => `${Math.round(f * 1000) / 10} %`).join(", ")} of the probed saturation (probe: concurrency ${a.probeConcurrency}, ${a.probeRequests} requests per arm; ${a.distribution} arrivals)\n`,
          );
      }
    });
  cmd
    .command("run <file>")
    .description(
      "Run the file's experiments one after the other, each like `inferbench run` (its own run\n" +
        "folder, compare and report), as one catalog run (experiments-<id>/: each experiment's\n" +
        "snapshot and outcome); a failed one is reported and the next one runs. Ctrl-C stops the\n" +
        "one running (its completed points kept), the rest are not started; --resume continues.",
    )
    .option("--filter <regex>", "only experiments whose name matches")
    .option(
      "--set <path=value>",
      "an extra override for every experiment (repeatable)",
      collect,
      [],
    )
    .option("--quick", "every experiment on the reduced load of `run --quick`")
    .option(
      "--dry-run",
      "start nothing: write each experiment's plan and every rendered artifact (per arm: plan.json,\n" +
        "the compose project or the Kubernetes objects and runner Job) into one folder",
    )
    .option("--keep", "cloud: keep each experiment's stack after its run, as `run --keep` does")
    .option("--runs-dir <dir>", "where runs are stored (default results/runs)")
    .option(
      "--resume <id>",
      "continue a catalog run (the id it printed): finished experiments are skipped, interrupted or failed ones resumed from their completed points; refused, with the diff, when an experiment would render differently now (its snapshot is immutable)",
    )
    .option(
      "--upload <gs://bucket/prefix>",
      "upload each experiment's run folder and the catalog run's own when the command ends (also after a failure or Ctrl-C); the bucket is checked with a marker object before anything runs",
    )
    .action(async (file: string, raw: unknown) => {
      const opts = parseOptions(runSchema, raw);
      if (opts.dryRun) {
        if (opts.resume)
          throw new UserError("--dry-run starts nothing: there is nothing to resume");
        const xs = selectExperiments(file, opts.filter);
        const dir = join(opts.runsDir ?? DEFAULT_RUNS_DIR, `dry-run-${newRunId()}`);
        // With --upload the rendered artifacts go to the bucket too (after the marker check).
        await withUpload(
          opts.upload,
          async () => {
            const n = await dryRun(xs, opts, dir);
            process.stdout.write(
              `${xs.length} experiment(s), ${n} file(s), nothing started: ${dir}\n`,
            );
          },
          () => (existsSync(dir) ? [dir] : []),
        );
        return;
      }
      let catalogDir: string | undefined;
      const { lines, exitCode } = await withUpload(
        opts.upload,
        (onRun) =>
          runCatalog({
            onRun,
            onCatalogDir: (d) => {
              catalogDir = d;
            },
            file,
            ...(opts.filter !== undefined ? { filter: opts.filter } : {}),
            set: opts.set,
            quick: opts.quick,
            keep: opts.keep,
            ...(opts.runsDir ? { runsDir: opts.runsDir } : {}),
            ...(opts.resume ? { resume: opts.resume } : {}),
          }),
        () => (catalogDir ? [catalogDir] : []),
      );
      process.stdout.write(`\n${lines.join("\n")}\n`);
      if (exitCode) process.exitCode = exitCode;
    });
}

/**
 * `inferbench experiment list|run FILE`: the named experiments of a catalog file
 * (experiments/*.yaml, see experiments/catalog.ts), expanded and checked before anything runs.
 */
import { join } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import {
  type CatalogExperiment,
  loadCatalog,
  planCatalogExperiment,
} from "../../experiments/catalog.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { errorMessage, UserError } from "../../lib/errors.ts";
import { logger } from "../../lib/logger.ts";
import { redactObject } from "../../lib/redact.ts";
import { newRunId } from "../../lib/run-id.ts";
import { DEFAULT_RUNS_DIR } from "../../results/store.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import { executeRun } from "../execute-run.ts";
import { collect, parseOptions } from "../options.ts";
import { planOutFiles } from "./plan.ts";

const listSchema = z.object({ filter: z.string().optional() });
const runSchema = z.object({
  filter: z.string().optional(),
  set: z.array(z.string()).default([]),
  quick: z.boolean().default(false),
  dryRun: z.boolean().default(false),
  keep: z.boolean().default(false),
  runsDir: z.string().min(1).optional(),
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
    const x = { ...x0, overrides: [...x0.overrides, ...opts.set], quick: opts.quick || x0.quick };
    const { plans, configs, plan } = planCatalogExperiment(x);
    files[`${x.name}/experiment.json`] = `${JSON.stringify(redactObject(plan), null, 2)}\n`;
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

/** The experiments whose names match --filter (a regular expression), refused when none do. */
function selected(file: string, filter: string | undefined): CatalogExperiment[] {
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
      for (const x of selected(file, opts.filter)) {
        const from = x.extends.length ? ` (extends ${x.extends.join(" → ")})` : "";
        process.stdout.write(
          `${x.name}${from}: stacks ${x.stacks.join(", ")}${x.quick ? ", quick" : ""}\n`,
        );
        if (x.description) process.stdout.write(`  ${x.description}\n`);
        for (const o of x.overrides) process.stdout.write(`  --set ${o}\n`);
      }
    });
  cmd
    .command("run <file>")
    .description(
      "Run the file's experiments one after the other, each like `inferbench run` (its own run\n" +
        "folder, compare and report); a failed one is reported and the next one runs. Ctrl-C stops\n" +
        "the one running (its completed points kept) and the rest are not started.",
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
    .action(async (file: string, raw: unknown) => {
      const opts = parseOptions(runSchema, raw);
      const xs = selected(file, opts.filter);
      if (opts.dryRun) {
        const dir = join(opts.runsDir ?? DEFAULT_RUNS_DIR, `dry-run-${newRunId()}`);
        const n = await dryRun(xs, opts, dir);
        process.stdout.write(`${xs.length} experiment(s), ${n} file(s), nothing started: ${dir}\n`);
        return;
      }
      const outcomes: string[] = [];
      let worst = 0;
      for (const [k, x] of xs.entries()) {
        logger.info(`experiment ${k + 1}/${xs.length}: ${x.name} (${x.stacks.join(", ")})`);
        try {
          const r = await executeRun({
            stacks: x.stacks,
            overrides: [...x.overrides, ...opts.set],
            quick: opts.quick || x.quick,
            interleave: x.interleave,
            ...(opts.runsDir ? { runsDir: opts.runsDir } : {}),
            keep: opts.keep,
          });
          outcomes.push(`${x.name}: ok, run ${r.runId}`);
        } catch (err) {
          const code = err instanceof UserError ? err.exitCode : 1;
          outcomes.push(
            `${x.name}: ${code === 3 ? "some points INVALID" : `failed (${errorMessage(err).split("\n")[0]})`}`,
          );
          worst = Math.max(worst, code);
          if (code === 130) {
            outcomes.push(...xs.slice(k + 1).map((y) => `${y.name}: not started (interrupted)`));
            break;
          }
        }
      }
      process.stdout.write(`\n${outcomes.join("\n")}\n`);
      if (worst) process.exitCode = worst;
    });
}

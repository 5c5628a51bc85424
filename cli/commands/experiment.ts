/**
 * `inferbench experiment list|run FILE`: the named experiments of a catalog file
 * (experiments/*.yaml, see experiments/catalog.ts), expanded and checked before anything runs.
 */
import type { Command } from "commander";
import { z } from "zod";
import { type CatalogExperiment, loadCatalog } from "../../experiments/catalog.ts";
import { errorMessage, UserError } from "../../lib/errors.ts";
import { logger } from "../../lib/logger.ts";
import { executeRun } from "../execute-run.ts";
import { collect, parseOptions } from "../options.ts";

const listSchema = z.object({ filter: z.string().optional() });
const runSchema = z.object({
  filter: z.string().optional(),
  set: z.array(z.string()).default([]),
  quick: z.boolean().default(false),
  runsDir: z.string().min(1).optional(),
});

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
    .option("--runs-dir <dir>", "where runs are stored (default results/runs)")
    .action(async (file: string, raw: unknown) => {
      const opts = parseOptions(runSchema, raw);
      const xs = selected(file, opts.filter);
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
            keep: false,
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

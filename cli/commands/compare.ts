/** `inferbench compare`: the two arms of one run, or two runs / GenAI-Perf artifact folders. */
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { writeFileAtomicSync } from "../../lib/atomic.ts";
import { UserError } from "../../lib/errors.ts";
import { logger } from "../../lib/logger.ts";
import { loadArtifactSide } from "../../results/artifact-sides.ts";
import {
  type CompareOptions,
  compareSides,
  comparisonCsv,
  type SideData,
} from "../../results/compare.ts";
import type { Comparison } from "../../results/compare-types.ts";
import { definitionDifferences, definitionsOf } from "../../results/importers/index.ts";
import { loadArmSide, loadRunSides, storedRunContext } from "../../results/run-sides.ts";
import { DEFAULT_RUNS_DIR, RunStore } from "../../results/store.ts";
import type { Arm } from "../../stacks/plan-types.ts";
import { parseOptions } from "../options.ts";
import { formatRunSummary } from "../run-summary.ts";

const optionsSchema = z.object({
  force: z.boolean().default(false),
  allowMixedDefinitions: z.boolean().default(false),
  json: z.boolean().default(false),
  out: z.string().min(1).optional(),
  runsDir: z.string().min(1).default(DEFAULT_RUNS_DIR),
});

/** `<run-id>`, `<run-id>:<arm>`, a run folder, or a GenAI-Perf artifact folder. */
export function resolveSide(spec: string, runsDir: string): SideData {
  const [id, arm] =
    spec.includes(":") && !existsSync(spec)
      ? (spec.split(":") as [string, string])
      : [spec, undefined];
  const asRun = existsSync(join(runsDir, id, "manifest.json"))
    ? RunStore.open(id, runsDir)
    : existsSync(join(id, "manifest.json"))
      ? RunStore.open(resolve(id).split("/").pop()!, resolve(id, ".."))
      : undefined;
  if (asRun) {
    const m = asRun.readManifest();
    if (!arm) {
      throw new UserError(
        `${spec} is a run with arms ${m.arms.join(" and ")}: say which, e.g. ${id}:${m.arms.at(-1)}`,
      );
    }
    if (!m.arms.includes(arm as Arm))
      throw new UserError(`run ${id} has no arm "${arm}"; it has ${m.arms.join(", ")}`);
    return { ...loadArmSide(asRun, arm as Arm, m.plans[arm]!, m.emulated), label: `${id}:${arm}` };
  }
  if (existsSync(id) && statSync(id).isDirectory()) return loadArtifactSide(id, id);
  throw new UserError(`${spec}: no run "${id}" in ${runsDir} and no such folder`, {
    hint: "list runs with `ls results/runs`",
  });
}

export function compareSpecs(
  specs: string[],
  runsDir: string,
  opts: CompareOptions & { allowMixedDefinitions?: boolean },
): Comparison {
  if (specs.length === 1) {
    const store = RunStore.open(specs[0]!, runsDir);
    const sides = loadRunSides(store);
    const run = storedRunContext(store);
    return compareSides(sides.a, sides.b, { ...opts, ...(run ? { run } : {}) });
  }
  const [a, b] = [resolveSide(specs[0]!, runsDir), resolveSide(specs[1]!, runsDir)];
  // Sides measured by different tools may define a metric differently (see inferbench import).
  const mixed = definitionDifferences(definitionsOf(a.source), definitionsOf(b.source));
  if (mixed.length > 0 && !opts.allowMixedDefinitions)
    throw new UserError(
      `refusing to compare ${a.label} with ${b.label}: their metrics are defined differently:\n  ${mixed.join("\n  ")}`,
      {
        hint: "pass --allow-mixed-definitions to compare anyway (the notes will say which differ)",
      },
    );
  const c = compareSides(a, b, opts);
  if (mixed.length > 0)
    c.notes.push(`Mixed metric definitions (--allow-mixed-definitions): ${mixed.join("; ")}.`);
  return c;
}

export function registerCompare(program: Command): void {
  program
    .command("compare")
    .description(
      "Compare managed with baseline: per model × load point, TTFT/ITL/E2E p50/p90/p99, throughput,\n" +
        "goodput and errors, the B-vs-A delta with a 95% confidence interval and a verdict, and the\n" +
        "server view. One run id compares its two arms; two arguments compare runs (<run-id>:<arm>)\n" +
        "or GenAI-Perf artifact folders.",
    )
    .argument("<a>", "run id (both arms), <run-id>:<arm>, or an artifact folder (side A)")
    .argument("[b]", "side B: <run-id>:<arm> or an artifact folder")
    .option(
      "--force",
      "compare even when the workloads differ (the differences are listed in the notes)",
    )
    .option(
      "--allow-mixed-definitions",
      "compare sides whose tools define a metric differently (e.g. an AIPerf import counting OSL from server usage)",
    )
    .option("--json", "print the comparison as JSON on stdout")
    .option("--out <dir>", "write comparison.json and comparison.csv into <dir>")
    .option("--runs-dir <dir>", "where runs are stored", DEFAULT_RUNS_DIR)
    .addHelpText(
      "after",
      "\nExamples:\n  inferbench compare 20261124-134512-ab12\n  inferbench compare 20261124-134512-ab12:managed 20261201-090000-cd34:managed\n  inferbench compare artifacts/run-a artifacts/run-b --force\n",
    )
    .action(async (a: string, b: string | undefined, raw: unknown) => {
      const opts = parseOptions(optionsSchema, raw);
      const c = compareSpecs(b === undefined ? [a] : [a, b], opts.runsDir, {
        force: opts.force,
        allowMixedDefinitions: opts.allowMixedDefinitions,
      });
      if (opts.json) process.stdout.write(`${JSON.stringify(c, null, 2)}\n`);
      else process.stdout.write(`${formatRunSummary(c)}\n`);
      if (opts.out) {
        const dir = resolve(opts.out);
        writeFileAtomicSync(join(dir, "comparison.json"), `${JSON.stringify(c, null, 2)}\n`);
        writeFileAtomicSync(join(dir, "comparison.csv"), comparisonCsv(c));
        logger.info(`wrote ${join(dir, "comparison.json")} and comparison.csv`);
      }
    });
}

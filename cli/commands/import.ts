/** `inferbench import`: a peer tool's results → inferbench's artifact layout, for compare and report. */
import type { Command } from "commander";
import { z } from "zod";
import { logger } from "../../lib/logger.ts";
import { PEER_TOOLS, readPeerRun, writeImport } from "../../results/importers/index.ts";
import { packageVersions } from "../../results/store.ts";
import { parseOptions } from "../options.ts";

const optionsSchema = z.object({
  from: z.enum(PEER_TOOLS as unknown as [string, ...string[]], {
    message: `--from: expected one of ${PEER_TOOLS.join(", ")}`,
  }),
  out: z.string().min(1),
  emulated: z.boolean().default(false),
});

export function registerImport(program: Command): void {
  program
    .command("import")
    .description(
      "Import a peer tool's results (AIPerf, genai-perf, perf_analyzer) into inferbench's artifact layout: per load point, per-request records, the tool's files unchanged, and each metric's source tool and definition. `inferbench compare` then reads the folder like its own; it refuses to set different metric definitions side by side without --allow-mixed-definitions.",
    )
    .argument(
      "<path>",
      "the tool's output: AIPerf --output-artifact-dir, a genai-perf artifact folder, or a perf_analyzer profile_export.json",
    )
    .requiredOption("--from <tool>", PEER_TOOLS.join(" | "))
    .requiredOption("--out <dir>", "new folder to write (never overwritten)")
    .option(
      "--emulated",
      "the peer ran against emulated engines (engine-sim): reports say EMULATED",
      false,
    )
    .addHelpText(
      "after",
      "\nExamples:\n  inferbench import --from aiperf artifacts/my-aiperf-run --out imports/aiperf-c8\n  inferbench compare artifacts/llama-openai-chat-concurrency8 imports/aiperf-c8\n",
    )
    .action((path: string, raw: unknown) => {
      const opts = parseOptions(optionsSchema, raw);
      const run = readPeerRun(opts.from, path);
      const files = writeImport(run, opts.out, {
        version: packageVersions()["inferbench"] ?? "unknown",
        emulated: opts.emulated,
      });
      const n = run.points.reduce((t, p) => t + p.records.length, 0);
      logger.info(
        `imported ${run.tool} ${run.toolVersion}: ${run.points.length} load point(s), ${n} requests → ${files[0]}`,
      );
      for (const c of run.checks) logger.info(`check: ${c}`);
      for (const note of run.notes) logger.info(`note: ${note}`);
    });
}

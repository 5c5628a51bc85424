/**
 * `inferbench upload <run-id|dir> gs://BUCKET/PREFIX`: a run (or catalog run) folder to a bucket,
 * each object CRC32C-verified; objects already there with the same checksum are skipped, so this
 * also finishes an upload that was cut short.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { UserError } from "../../lib/errors.ts";
import { sinkFor } from "../../results/sinks/index.ts";
import { DEFAULT_RUNS_DIR } from "../../results/store.ts";
import { parseOptions } from "../options.ts";
import { uploadOne } from "../upload.ts";

const optionsSchema = z.object({ runsDir: z.string().min(1).default(DEFAULT_RUNS_DIR) });

export function registerUpload(program: Command): void {
  program
    .command("upload")
    .description(
      "Upload a run folder (a run id, a catalog run's experiments-<id>, or a path) to gs://BUCKET/PREFIX: each object checked by CRC32C; objects already there unchanged are skipped (resumes a cut upload).",
    )
    .argument("<run>", "run id, experiments-<id>, or a folder")
    .argument("<url>", "gs://BUCKET[/PREFIX]")
    .option("--runs-dir <dir>", "where runs are stored", DEFAULT_RUNS_DIR)
    .action(async (run: string, url: string, raw: unknown) => {
      const opts = parseOptions(optionsSchema, raw);
      const dir = [join(opts.runsDir, run), run].find(
        (d) => existsSync(d) && statSync(d).isDirectory(),
      );
      if (!dir)
        throw new UserError(`no run folder "${run}" (in ${opts.runsDir} or as a path)`, {
          exitCode: 2,
          hint: "give a run id as `inferbench run` printed it, or the folder's path",
        });
      const sink = await sinkFor(url);
      await sink.preflight();
      await uploadOne(sink, dir);
    });
}

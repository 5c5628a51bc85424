/**
 * Dataset files that travel with the compose bundle: a workload that reads a local file (JSONL
 * input, ShareGPT, Azure / Mooncake / ServeGen traces) has it copied into `datasets/` of the bundle
 * and mounted read-only into the runner container, so the VM reads exactly the bytes the user
 * pointed at (and the bundle hash changes when they change).
 */
import { readFileSync } from "node:fs";
import { basename, posix } from "node:path";
import { InputFileError } from "../lib/errors.ts";
import type { StackPlan } from "../stacks/plan-types.ts";

/** Bundle folder of the dataset files, relative to the project directory. */
export const DATASETS_DIR = "datasets";

export interface DatasetFile {
  /** Stack config path that names the file, for error messages. */
  configPath: string;
  /** The path as written in the stack config (resolved against the working directory). */
  localPath: string;
  /** Path inside the bundle, e.g. `datasets/0-azure_conv.csv`. */
  bundlePath: string;
}

/** The local files the plan's workload reads, in a stable order (pure). */
export function datasetFiles(plan: StackPlan): DatasetFile[] {
  const d = plan.runner.workload.dataset;
  const found: { configPath: string; localPath: string }[] = [];
  if ("path" in d) found.push({ configPath: "workload.dataset.path", localPath: d.path });
  if (d.kind === "servegen" && d.datasetPath !== undefined)
    found.push({ configPath: "workload.dataset.datasetPath", localPath: d.datasetPath });
  // The index keeps two files with one base name apart; the name stays readable on the host.
  return found.map((f, i) => ({
    ...f,
    bundlePath: posix.join(
      DATASETS_DIR,
      `${i}-${basename(f.localPath).replace(/[^A-Za-z0-9._-]/g, "_")}`,
    ),
  }));
}

/**
 * Reads every dataset file of the plan: local path → content. Synchronous so the Pulumi program
 * (synchronous) and the CLI read the same way; the files are at most a few MB.
 */
export function readDatasetFiles(plan: StackPlan): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of datasetFiles(plan)) {
    try {
      out[f.localPath] = readFileSync(f.localPath, "utf8");
    } catch (err) {
      throw new InputFileError(
        f.localPath,
        undefined,
        `cannot read the dataset named by ${f.configPath} (${(err as Error).message})`,
        "paths are relative to the directory inferbench runs in; fix the path or run from there",
      );
    }
  }
  return out;
}

/**
 * The benchmark script the runner container executes next to the engines: one `inferbench
 * profile` (GenAI-Perf-compatible) per load point, against the router on the compose network,
 * every model of the workload in one mixed stream (round robin), artifacts under /results/<point>/.
 * Pure: plan in, POSIX sh out (checked with `sh -n` in tests).
 */
import { UserError } from "../lib/errors.ts";
import type { DatasetPlan, LoadPoint, StackPlan } from "../stacks/plan-types.ts";

export const RUNNER_SCRIPT_FILE = "run-benchmark.sh";

function q(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function loadPointLabel(lp: LoadPoint): string {
  return lp.kind === "concurrency"
    ? `concurrency${lp.concurrency}`
    : `request_rate${lp.requestRate}`;
}

/**
 * Flags selecting the dataset. File datasets are read from where the bundle mounts them:
 * `files` maps each local path of the plan to its path inside the runner container.
 */
function datasetFlags(d: DatasetPlan, files: Readonly<Record<string, string>>): string[] {
  const file = (local: string): string => {
    const p = files[local];
    if (p === undefined)
      throw new UserError(
        `dataset file ${local} is not part of the bundle; render with its content (compose/datasets.ts readDatasetFiles)`,
      );
    return p;
  };
  const trace = (t: { timeScale: number; maxRequests?: number }) => [
    "--time-scale",
    String(t.timeScale),
    ...(t.maxRequests === undefined ? [] : ["--max-requests", String(t.maxRequests)]),
  ];
  switch (d.kind) {
    case "synthetic":
      return [
        "--synthetic-input-tokens-mean",
        String(d.inputTokensMean),
        "--synthetic-input-tokens-stddev",
        String(d.inputTokensStddev),
        "--num-dataset-entries",
        String(d.numDatasetEntries),
      ];
    case "shared-prefix":
      return [
        "--workload",
        "shared-prefix",
        "--groups",
        String(d.groups),
        "--prompts-per-group",
        String(d.promptsPerGroup),
        "--system-prompt-tokens",
        String(d.systemPromptTokens),
        "--question-tokens",
        String(d.questionTokens),
      ];
    case "multi-round-qa":
      return [
        "--workload",
        "multi-round-qa",
        "--users",
        String(d.users),
        "--rounds",
        String(d.rounds),
        "--system-prompt-tokens",
        String(d.systemPromptTokens),
        "--question-tokens",
        String(d.questionTokens),
        "--answer-tokens",
        String(d.answerTokens),
      ];
    case "input-file":
      return ["--workload", "input-file", "--input-file", file(d.path)];
    case "sharegpt":
      return [
        "--workload",
        "sharegpt",
        "--input-file",
        file(d.path),
        "--sharegpt-max-conversations",
        String(d.maxConversations),
        "--num-dataset-entries",
        String(d.numPrompts),
      ];
    case "azure-trace":
    case "mooncake":
      return ["--workload", d.kind, "--input-file", file(d.path), ...trace(d)];
    case "servegen":
      return [
        "--workload",
        "servegen",
        "--input-file",
        file(d.path),
        ...(d.datasetPath === undefined ? [] : ["--servegen-dataset", file(d.datasetPath)]),
        ...trace(d),
      ];
  }
}

function loadPointFlags(lp: LoadPoint): string[] {
  if (lp.kind === "concurrency") return ["--concurrency", String(lp.concurrency)];
  const f = ["--request-rate", String(lp.requestRate), "--request-distribution", lp.distribution];
  if (lp.burstiness !== undefined) f.push("--burstiness", String(lp.burstiness));
  if (lp.maxConcurrency !== undefined) f.push("--max-concurrency", String(lp.maxConcurrency));
  return f;
}

/** argv of `inferbench profile` for one load point. */
export function profileArgs(
  plan: StackPlan,
  lp: LoadPoint,
  routerUrl: string,
  outDir: string,
  datasetFiles: Readonly<Record<string, string>> = {},
): string[] {
  const w = plan.runner.workload;
  const args = ["profile"];
  for (const m of w.models) args.push("-m", m);
  if (w.models.length > 1) args.push("--model-selection-strategy", "round_robin");
  args.push("--url", routerUrl, "--endpoint-type", w.endpointType);
  if (w.streaming) args.push("--streaming");
  args.push(...datasetFlags(w.dataset, datasetFiles), ...loadPointFlags(lp));
  if (w.outputTokensMean !== undefined) {
    args.push(
      "--output-tokens-mean",
      String(w.outputTokensMean),
      "--output-tokens-stddev",
      String(w.outputTokensStddev),
    );
  }
  if (w.ignoreEos) args.push("--ignore-eos");
  if (w.minTokens !== undefined) args.push("--min-tokens", String(w.minTokens));
  if (w.requestCount !== undefined) args.push("--request-count", String(w.requestCount));
  args.push("--warmup-request-count", String(plan.runner.warmupRequests));
  args.push("--random-seed", String(plan.runner.seed));
  if (plan.emulated) args.push("--emulated");
  args.push("--no-progress", "--artifact-dir", outDir);
  return args;
}

export function renderRunnerScript(
  plan: StackPlan,
  routerUrl: string,
  /** Local dataset path → path inside the runner container. */
  datasetFiles: Readonly<Record<string, string>> = {},
  resultsDir = "/results",
): string {
  const lines = [
    "#!/bin/sh",
    `# Rendered by inferbench: the ${plan.mode} arm's load points against ${routerUrl}.`,
    "set -eu",
    `echo "inferbench runner: ${plan.runner.loadPoints.length} load point(s), arm ${plan.mode}${plan.emulated ? " (EMULATED)" : ""}"`,
  ];
  for (const lp of plan.runner.loadPoints) {
    const out = `${resultsDir}/${loadPointLabel(lp)}`;
    lines.push(`echo "== ${loadPointLabel(lp)}"`);
    lines.push(
      ["inferbench", ...profileArgs(plan, lp, routerUrl, out, datasetFiles)].map(q).join(" "),
    );
  }
  lines.push('echo "inferbench runner: done"', "");
  return lines.join("\n");
}

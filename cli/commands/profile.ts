/**
 * `inferbench profile`: GenAI-Perf-compatible load generation (same flags, defaults and artifacts),
 * plus sweeps, trace/multi-turn workloads, server usage, schedule lag and a validity gate.
 *
 * Exit status: 0 valid; 2 bad flags or input files; 3 a load point was invalid (schedule lag p99 >
 * max(2 ms, 5% of the mean gap) or achieved rate < 95% of target); 4 aborted by --max-error-rate
 * or no request succeeded; 1 anything else.
 */
import type { Command } from "commander";
import { UserError } from "../../lib/errors.ts";
import { logger } from "../../lib/logger.ts";
import {
  DISTRIBUTIONS,
  ENDPOINT_TYPES,
  planProfile,
  profileSchema,
  WORKLOADS,
} from "../../loadgen/profile-options.ts";
import { EXIT, type LoadPointResult, runLoadPoint } from "../../loadgen/run-point.ts";
import { summaryTable } from "../../loadgen/summary-table.ts";
import { runAutoSweep, runSweep, SWEEP_SUMMARY_FILE } from "../../loadgen/sweep.ts";

const collect = (v: string, prev: string[] = []) => [...prev, v];

function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Configures `profile` on a command created by the parent (so it inherits the parent's settings). */
export function configureProfileCommand(cmd: Command): Command {
  cmd
    .description(
      "Drive GenAI-Perf-compatible load against an OpenAI-compatible server and write GenAI-Perf " +
        "(era D) artifacts in <artifact-dir>/<model>-openai-<type>-<concurrencyN|request_rateR>/. " +
        "Extras (per-request records with status, backend, server usage and schedule lag; " +
        "validity) go to <export>_inferbench.json and <export>_inferbench_requests.jsonl. " +
        "Exit status: 0 valid, 2 bad input, 3 invalid run (generator lag or rate), " +
        "4 errors/aborted, 1 other.",
    )
    .argument(
      "[perf_analyzer_args...]",
      "after `--`: perf_analyzer arguments (--request-distribution is mapped, the rest ignored)",
    )
    .requiredOption("-m, --model <names...>", "model name(s) to send as `model`")
    .option(
      "--model-selection-strategy <s>",
      "round_robin | random across several models",
      "round_robin",
    )
    .option(
      "--endpoint-type <type>",
      `API: ${ENDPOINT_TYPES.join(" | ")} (v1/chat/completions, v1/completions)`,
      "chat",
    )
    .option("--endpoint <path>", "custom endpoint path (default from --endpoint-type)")
    .option("--streaming", 'send "stream": true and time every SSE chunk', false)
    .option("-u, --url <host:port>", "server address (scheme optional)", "localhost:8000")
    .option("-H, --header <K:V>", "extra HTTP header (repeatable)", collect, [])
    .option(
      "--concurrency <n>",
      "closed loop: requests kept in flight (default 1 when no other load is given)",
    )
    .option("--request-rate <r>", "open loop: requests per second (exclusive with --concurrency)")
    .option(
      "--request-distribution <d>",
      `arrivals for --request-rate: ${DISTRIBUTIONS.join(" | ")} (default constant, as perf_analyzer)`,
    )
    .option(
      "--burstiness <k>",
      "gamma shape for --request-distribution gamma (<1 burstier than Poisson)",
    )
    .option("--max-concurrency <n>", "cap on in-flight requests for --request-rate")
    .option("--synthetic-input-tokens-mean <n>", "synthetic prompt length mean (tokens)", "550")
    .option("--synthetic-input-tokens-stddev <n>", "synthetic prompt length stddev", "0")
    .option(
      "--output-tokens-mean <n>",
      "max_tokens = int(max(1, gauss(mean, sd))); unset: no max_tokens",
    )
    .option("--output-tokens-stddev <n>", "stddev of the output length", "0")
    .option("--output-tokens-mean-deterministic", "old flag: same as --ignore-eos")
    .option("--num-dataset-entries <n>", "distinct payloads, reused cyclically (default 100)")
    .option("--num-prompts <n>", "old name of --num-dataset-entries")
    .option("--random-seed <n>", "seed for prompts, lengths and arrivals", "0")
    .option(
      "--request-count <n>",
      "requests measured (default max(10, 2×concurrency); rate: max(10, 2×⌈rate⌉); traces: all)",
    )
    .option(
      "-p, --measurement-interval <ms>",
      "older mode: measure for this many ms instead of a request count",
    )
    .option("--warmup-request-count <n>", "warm-up requests, not exported", "0")
    .option("--artifact-dir <dir>", "parent folder of run folders", "artifacts")
    .option(
      "--profile-export-file <name>",
      "raw export name; X.json → X_genai_perf.json/.csv",
      "profile_export.json",
    )
    .option(
      "--tokenizer <name>",
      "tokenizer for ISL/OSL (shipped offline: Llama-3 and Qwen; others fall back to Llama-3)",
    )
    .option(
      "--extra-inputs <k:v>",
      "extra body field (true/false→bool, digits→int, one dot→float) or {json} (repeatable)",
      collect,
      [],
    )
    .option(
      "--input-file <path>",
      "dataset file: JSONL ({text} or payload rows), ShareGPT JSON, Azure CSV, Mooncake JSONL, ServeGen CSV",
    )
    .option(
      "--goodput <metric:value...>",
      "SLO targets: request_latency, time_to_first_token, time_to_second_token, inter_token_latency (ms, ≤), output_token_throughput_per_user (≥)",
    )
    .option("--generate-plots", "SVG charts under <run>/plots/", false)
    .option(
      "--workload <kind>",
      `dataset kind: ${WORKLOADS.join(" | ")} (default synthetic, or from --input-file)`,
    )
    .option(
      "--sharegpt-max-conversations <n>",
      "sharegpt: conversations read before cutting pieces",
      "1000",
    )
    .option("--users <n>", "multi-round-qa: concurrent users", "10")
    .option("--rounds <n>", "multi-round-qa: rounds per user", "5")
    .option(
      "--system-prompt-tokens <n>",
      "multi-round-qa/shared-prefix: shared system prompt length",
      "1000",
    )
    .option("--question-tokens <n>", "multi-round-qa/shared-prefix: question length", "100")
    .option("--answer-tokens <n>", "multi-round-qa: answer length (max_tokens)", "100")
    .option("--groups <n>", "shared-prefix: prefix groups", "8")
    .option("--prompts-per-group <n>", "shared-prefix: prompts per group", "16")
    .option(
      "--time-scale <x>",
      "trace replay: multiply recorded timestamps (0.5 = twice as fast)",
      "1",
    )
    .option(
      "--fixed-schedule",
      "replay the input file's timestamps (default for azure-trace, mooncake, servegen)",
      false,
    )
    .option("--max-requests <n>", "trace workloads: use the first N requests")
    .option("--servegen-dataset <path>", "servegen: per-window length distributions (JSON)")
    .option("--ignore-eos", "send ignore_eos: true (generate exactly max_tokens)", false)
    .option("--min-tokens <n>", "send min_tokens")
    .option("--max-error-rate <f>", "abort when failed/finished exceeds this fraction (0..1)")
    .option(
      "--session-header <name>",
      "header carrying the session id of multi-turn workloads",
      "x-session-id",
    )
    .option("--sweep <spec>", "concurrency:1,2,4 | request-rate:1,5,10 | auto[:points]")
    .option("--no-server-usage", "do not ask for stream usage (stream_options.include_usage)")
    .option("--request-timeout <s>", "per-request timeout, seconds", "600")
    .option("--emulated", "label artifacts as emulated (engine-sim)", false)
    .option("--no-progress", "no progress bar")
    .option("--json", "print the result summary as JSON on stdout", false)
    // Old GenAI-Perf flags: accepted, ignored.
    .option("--service-kind <kind>", "old flag, ignored")
    .option("--backend <b>", "old flag, ignored")
    .option("--output-format <f>", "old flag, ignored")
    .option("-s, --stability-percentage <p>", "old flag, ignored")
    .option("--tokenizer-revision <r>", "ignored (tokenizers ship offline)")
    .option("--tokenizer-trust-remote-code", "ignored")
    .option("--server-metrics-url <urls...>", "ignored")
    .option("--batch-size <n>", "ignored")
    .option("-v, --verbose", "more logging");
  // Unknown flags: a UserError (exit 2) that lists the valid ones.
  (cmd as unknown as { unknownOption: (flag: string) => never }).unknownOption = (flag: string) => {
    const valid = cmd.options
      .map((o) => o.long ?? o.short)
      .filter(Boolean)
      .join(" ");
    throw new UserError(`unknown option '${flag}' for inferbench profile`, {
      hint: `valid options: ${valid}`,
    });
  };
  cmd.action(async (paArgs: string[], raw: Record<string, unknown>) => {
    const code = await runProfile(raw, paArgs);
    process.exitCode = code;
  });
  return cmd;
}

export function registerProfile(program: Command): void {
  configureProfileCommand(program.command("profile"));
}

function describeResult(r: LoadPointResult): string {
  const rate =
    r.targetRate !== undefined
      ? `, target ${r.targetRate.toFixed(2)} req/s, achieved ${(r.achievedRate ?? 0).toFixed(2)}`
      : "";
  return `${r.valid ? "valid" : "INVALID"}: ${r.requestCount} requests, ${r.errorCount} errors, lag p99 ${r.lagP99Ms.toFixed(3)} ms${rate}${r.invalidReasons.length ? ` — ${r.invalidReasons.join("; ")}` : ""}`;
}

/** Parses flags and runs; returns the exit status. Throws UserError for bad input. */
export async function runProfile(
  raw: Record<string, unknown>,
  paArgs: string[],
  stdout: { write(s: string): unknown } = process.stdout,
): Promise<number> {
  const parsed = profileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0] ?? "options");
    throw new UserError(`${flagName(key)}: ${issue.message}`);
  }
  const flags = parsed.data;
  const plan = planProfile(flags, paArgs);
  for (const n of plan.notes) logger.info(`note: ${n}`);
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once("SIGINT", onSig);
  const base = { ...plan.base, signal: ac.signal };
  const results: LoadPointResult[] = [];
  const show = (r: LoadPointResult) => {
    if (r.stats && !flags.json) stdout.write(`${summaryTable(r.stats, flags.streaming)}\n`);
    logger.info(`${r.runDir}: ${describeResult(r)}`);
  };
  try {
    if (!Array.isArray(plan.points)) {
      const auto = await runAutoSweep(base, plan.points.auto, plan.points.distribution, (row) => {
        results.push(row.result);
        show(row.result);
      });
      logger.info(
        `auto sweep: saturated at ${auto.saturated.toFixed(2)} req/s (probes: ${auto.probes.map((p) => `c${p.concurrency}=${p.throughput.toFixed(1)}`).join(", ")}); summary ${SWEEP_SUMMARY_FILE}`,
      );
      if (auto.rows.length === 0) return EXIT.errors;
    } else if (plan.points.length > 1) {
      await runSweep(base, plan.points, (row) => {
        results.push(row.result);
        show(row.result);
      });
    } else {
      const r = await runLoadPoint({ ...base, loadPoint: plan.points[0]! });
      results.push(r);
      show(r);
    }
  } finally {
    process.removeListener("SIGINT", onSig);
  }
  if (flags.json)
    stdout.write(
      `${JSON.stringify(
        results.map((r) => ({
          runDir: r.runDir,
          valid: r.valid,
          reasons: r.invalidReasons,
          requests: r.requestCount,
          errors: r.errorCount,
          lagP99Ms: r.lagP99Ms,
          targetRate: r.targetRate ?? null,
          achievedRate: r.achievedRate ?? null,
          exitCode: r.exitCode,
          stats: r.stats ?? null,
        })),
        null,
        2,
      )}\n`,
    );
  return results.reduce<number>((worst, r) => Math.max(worst, r.exitCode), EXIT.ok);
}

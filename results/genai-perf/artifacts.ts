/**
 * Era-D GenAI-Perf artifact writer: folder naming, inputs.json, profile_export.json (perf_analyzer
 * raw, minified), profile_export_genai_perf.json (indent 2) and .csv (CRLF). Extras go into
 * separate `<export>_inferbench*.json[l]` files so existing keys keep their meaning. The raw export
 * leaves out the usage-only stream event (see isUsageOnlyEvent): genai-perf cannot parse it.
 */
import { join } from "node:path";
import { writeFileAtomic } from "../../lib/atomic.ts";
import type { GenAiPerfStats, RawRequest } from "./metrics.ts";
import { PyFloat, pyCsvRow, pyFloatRepr, pyFormatComma2, pyJsonDumps } from "./pyformat.ts";
import { isUsageOnlyEvent } from "./sse.ts";
import type { MetricStats } from "./stats.ts";

export type EndpointType = "chat" | "completions";
export type ExperimentMode = { mode: "concurrency" | "request_rate"; value: number };

export function endpointPath(type: EndpointType): string {
  return type === "chat" ? "v1/chat/completions" : "v1/completions";
}

/** GenAI-Perf's formatted model name: the first model (+ `_multi` when several), "/" → "_". */
export function formattedModelName(models: readonly string[]): string {
  const base = models.length > 1 ? `${models[0]}_multi` : (models[0] ?? "model");
  return base.replace(/\//g, "_");
}

/** `<model>-openai-<chat|completions>-<concurrencyN|request_rateR>` (R printed like Python). */
export function runFolderName(
  models: readonly string[],
  endpointType: EndpointType,
  exp: ExperimentMode,
): string {
  const stim =
    exp.mode === "concurrency"
      ? `concurrency${exp.value}`
      : `request_rate${pyFloatRepr(exp.value)}`;
  return `${formattedModelName(models)}-openai-${endpointType}-${stim}`;
}

/** `X.json` → `X_genai_perf.json` / `X_genai_perf.csv` / extras `X_inferbench...`. */
export function exportNames(profileExportFile: string) {
  const stem = profileExportFile.replace(/\.json$/i, "");
  return {
    raw: `${stem}.json`,
    genaiJson: `${stem}_genai_perf.json`,
    genaiCsv: `${stem}_genai_perf.csv`,
    extrasJson: `${stem}_inferbench.json`,
    requestsJsonl: `${stem}_inferbench_requests.jsonl`,
  };
}

export function inputsJson(bodies: readonly unknown[]): string {
  return pyJsonDumps({ data: bodies.map((b) => ({ payload: [b] })) }, 2);
}

function jsonMin(v: unknown): string {
  if (typeof v === "bigint") return v.toString();
  if (v instanceof PyFloat) return pyFloatRepr(v.value);
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return `[${v.map(jsonMin).join(",")}]`;
  if (typeof v === "object") {
    return `{${Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => `${JSON.stringify(k)}:${jsonMin(x)}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

export function profileExportJson(opts: {
  experiment: ExperimentMode;
  requests: readonly RawRequest[];
  windowBoundaries: readonly bigint[];
  endpoint: string;
  version: string;
}): string {
  return jsonMin({
    experiments: [
      {
        // perf_analyzer writes a request rate as a double (10.0), a concurrency as an integer.
        experiment: {
          mode: opts.experiment.mode,
          value:
            opts.experiment.mode === "request_rate"
              ? new PyFloat(opts.experiment.value)
              : opts.experiment.value,
        },
        requests: opts.requests.map((r) => {
          const keep = r.responses.map((x) => !isUsageOnlyEvent(x));
          return {
            timestamp: r.timestamp,
            request_inputs: { payload: r.payload },
            response_timestamps: r.responseTimestamps.filter((_, i) => keep[i]),
            response_outputs: r.responses
              .filter((_, i) => keep[i])
              .map((response) => ({ response })),
          };
        }),
        window_boundaries: opts.windowBoundaries,
      },
    ],
    version: opts.version,
    service_kind: "openai",
    endpoint: opts.endpoint,
  });
}

function floatify(stats: GenAiPerfStats): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(stats)) {
    if (!v) continue;
    const m: Record<string, unknown> = {};
    for (const [sk, sv] of Object.entries(v as Record<string, unknown>)) {
      m[sk] = typeof sv === "number" ? new PyFloat(sv) : sv;
    }
    out[k] = m;
  }
  return out;
}

export function genaiPerfJson(stats: GenAiPerfStats, inputConfig: Record<string, unknown>): string {
  return pyJsonDumps({ ...floatify(stats), input_config: inputConfig }, 2);
}

export const CSV_STAT_ORDER = [
  "avg",
  "min",
  "max",
  "p99",
  "p95",
  "p90",
  "p75",
  "p50",
  "p25",
  "p10",
  "p5",
  "p1",
] as const;

/** Python's str.title() for our ASCII metric names. */
export function pyTitle(s: string): string {
  return s.replace(/[A-Za-z]+/g, (w) => w[0]!.toUpperCase() + w.slice(1).toLowerCase());
}

export function metricLabel(name: string, unit: string): string {
  return `${pyTitle(name.replace(/_/g, " "))} (${unit})`;
}

/** Per-request metric rows, in GenAI-Perf's order (CSV and console table). */
export const CSV_REQUEST_ROWS = [
  "time_to_first_token",
  "time_to_second_token",
  "request_latency",
  "inter_token_latency",
  "output_token_throughput_per_user",
  "output_sequence_length",
  "input_sequence_length",
] as const;

/** Rows that exist only for streaming runs. */
export const STREAMING_ONLY: ReadonlySet<string> = new Set([
  "time_to_first_token",
  "time_to_second_token",
  "inter_token_latency",
  "output_token_throughput_per_user",
]);

/** profile_export_genai_perf.csv, byte for byte as genai-perf's csv.writer writes it. */
export function genaiPerfCsv(stats: GenAiPerfStats, streaming: boolean): string {
  let out = pyCsvRow(["Metric", ...CSV_STAT_ORDER]);
  for (const name of CSV_REQUEST_ROWS) {
    const m = stats[name] as MetricStats | undefined;
    if (!m) continue;
    if (!streaming && STREAMING_ONLY.has(name)) continue;
    const cells = CSV_STAT_ORDER.map((k) => {
      const v = m[k];
      return v === undefined ? "N/A" : pyFormatComma2(v);
    });
    out += pyCsvRow([metricLabel(name, m.unit), ...cells]);
  }
  out += pyCsvRow([]);
  out += pyCsvRow(["Metric", "Value"]);
  out += pyCsvRow([
    "Output Token Throughput (tokens/sec)",
    pyFormatComma2(stats.output_token_throughput.avg),
  ]);
  out += pyCsvRow(["Request Throughput (per sec)", pyFormatComma2(stats.request_throughput.avg)]);
  if (stats.request_goodput)
    out += pyCsvRow(["Request Goodput (per sec)", pyFormatComma2(stats.request_goodput.avg)]);
  out += pyCsvRow(["Request Count (count)", pyFormatComma2(stats.request_count.avg)]);
  return out;
}

export interface InputConfigArgs {
  models: string[];
  modelSelectionStrategy: string;
  endpointType: EndpointType;
  endpoint?: string;
  streaming: boolean;
  url: string;
  concurrency?: number;
  requestRate?: number;
  /** Not in input_config (genai-perf hands it to perf_analyzer only); kept in the extras file. */
  requestDistribution?: string;
  measurementInterval?: number;
  warmupRequestCount: number;
  requestCount: number;
  syntheticInputTokensMean: number;
  syntheticInputTokensStddev: number;
  outputTokensMean?: number;
  outputTokensStddev: number;
  numDatasetEntries: number;
  randomSeed: number;
  inputFile?: string;
  extraInputs: Record<string, unknown>;
  headers: Record<string, string>;
  goodput: Record<string, number>;
  artifactDirectory: string;
  profileExportFile: string;
  generatePlots: boolean;
  tokenizer: string;
}

/** Header names whose values are credentials: written as `Name:[REDACTED]` (genai-perf writes them). */
const SECRET_HEADER =
  /^(authorization|proxy-authorization|cookie|set-cookie)$|key|token|secret|password/i;

/** genai-perf's DEFAULT_DCGM_METRICS_URL, the default of --server-metrics-url (ignored here). */
const DEFAULT_SERVER_METRICS_URLS = ["http://localhost:9400/metrics"];

/**
 * The nested `input_config` block exactly as genai-perf 0.0.16 dumps its ConfigCommand
 * (`to_json_dict`: enums as lower-case names, None and unset dicts as "", key order as declared);
 * checked key by key against a real genai-perf run by test/peers. Fields genai-perf has and
 * inferbench does not implement (audio, image, prefix prompts, sessions, checkpoints) carry
 * genai-perf's defaults, which is what genai-perf writes when those flags are not given.
 */
export function inputConfigBlock(a: InputConfigArgs): Record<string, unknown> {
  const stimulus: Record<string, unknown> =
    a.requestRate !== undefined
      ? { request_rate: new PyFloat(a.requestRate) }
      : { concurrency: a.concurrency ?? 1 };
  const orEmpty = (o: Record<string, unknown>) => (Object.keys(o).length > 0 ? o : "");
  const headers = Object.entries(a.headers).map(
    ([k, v]) => `${k}:${SECRET_HEADER.test(k) ? "[REDACTED]" : v}`,
  );
  const goodput: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(a.goodput)) goodput[k] = new PyFloat(v);
  return {
    model_names: a.models,
    subcommand: "profile",
    verbose: false,
    template_filename: "genai_perf_config.yaml",
    analyze: { sweep_parameters: { concurrency: { min: 1, max: 1024 } } },
    endpoint: {
      model_selection_strategy: a.modelSelectionStrategy,
      // genai-perf's default (OutputFormat.TENSORRTLLM), written for every service kind.
      backend: "tensorrtllm",
      custom: (a.endpoint ?? endpointPath(a.endpointType)).replace(/^[ /]+/, ""),
      type: a.endpointType,
      streaming: a.streaming,
      server_metrics_urls: DEFAULT_SERVER_METRICS_URLS,
      url: a.url,
      grpc_method: "",
      service_kind: "openai",
      output_format: a.endpointType === "chat" ? "openai_chat_completions" : "openai_completions",
    },
    perf_analyzer: {
      path: "perf_analyzer",
      verbose: false,
      stimulus,
      stability_percentage: 999,
      measurement: {
        mode: a.measurementInterval !== undefined ? "interval" : "request_count",
        num: a.measurementInterval ?? a.requestCount,
      },
      warmup_request_count: a.warmupRequestCount,
    },
    input: {
      batch_size: 1,
      extra: orEmpty(a.extraInputs),
      goodput: orEmpty(goodput),
      header: headers.length > 0 ? headers : "",
      file: a.inputFile ?? "",
      num_dataset_entries: a.numDatasetEntries,
      random_seed: a.randomSeed,
      audio: {
        batch_size: 1,
        length: { mean: 0, stddev: 0 },
        format: "wav",
        depths: [16],
        sample_rates: [16],
        num_channels: 1,
      },
      image: {
        width: { mean: 0, stddev: 0 },
        height: { mean: 0, stddev: 0 },
        batch_size: 1,
        format: "png",
      },
      output_tokens: {
        mean: a.outputTokensMean ?? "",
        deterministic: false,
        stddev: a.outputTokensStddev,
      },
      synthetic_tokens: {
        mean: a.syntheticInputTokensMean,
        stddev: a.syntheticInputTokensStddev,
      },
      prefix_prompt: { num: 0, length: 100 },
      sessions: {
        num: 0,
        turns: { mean: 1, stddev: 0 },
        turn_delay: { mean: 0, ratio: new PyFloat(1), stddev: 0 },
      },
      prompt_source: a.inputFile ? "file" : "synthetic",
      synthetic_files: [],
      payload_file: "",
    },
    output: {
      artifact_directory: a.artifactDirectory,
      checkpoint_directory: "checkpoint",
      profile_export_file: a.profileExportFile.replace(/^.*[/\\]/, ""),
      generate_plots: a.generatePlots,
      enable_checkpointing: false,
    },
    tokenizer: {
      name: a.tokenizer,
      revision: "main",
      trust_remote_code: false,
      _enable_debug_logging: true,
    },
    process: { input_path: "aggregated" },
  };
}

export interface ArtifactSet {
  dir: string;
  profileExportFile: string;
  inputsBodies: readonly unknown[];
  raw: Parameters<typeof profileExportJson>[0];
  stats?: GenAiPerfStats;
  streaming: boolean;
  inputConfig: Record<string, unknown>;
  extras: Record<string, unknown>;
  requestRecords: readonly unknown[];
}

/** Writes every file of one run folder atomically. Returns the paths written. */
export async function writeArtifacts(set: ArtifactSet): Promise<string[]> {
  const names = exportNames(set.profileExportFile);
  const files: [string, string][] = [
    ["inputs.json", inputsJson(set.inputsBodies)],
    [names.raw, profileExportJson(set.raw)],
  ];
  if (set.stats) {
    files.push([names.genaiJson, genaiPerfJson(set.stats, set.inputConfig)]);
    files.push([names.genaiCsv, genaiPerfCsv(set.stats, set.streaming)]);
  }
  files.push([names.extrasJson, `${JSON.stringify(set.extras, null, 2)}\n`]);
  files.push([
    names.requestsJsonl,
    set.requestRecords.map((r) => `${JSON.stringify(r, bigintReplacer)}\n`).join(""),
  ]);
  const written: string[] = [];
  for (const [name, text] of files) {
    const path = join(set.dir, name);
    await writeFileAtomic(path, text);
    written.push(path);
  }
  return written;
}

export function bigintReplacer(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? v.toString() : v;
}

/**
 * `--from aiperf PATH`: an AIPerf 0.13 output folder (`aiperf profile --output-artifact-dir`):
 * profile_export_aiperf.json (summary, schema_version 1.4) and profile_export.jsonl (one record
 * per request: metadata with request_start_ns/request_end_ns, metrics with value+unit, error).
 * The records are AIPerf's own per-request values; only its profiling phase is imported, and the
 * record count must match the summary's (completed + failed), or nothing is imported.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { InputFileError, UserError } from "../../lib/errors.ts";
import { readJsonFile } from "../../lib/json-file.ts";
import { endpointPath, runFolderName } from "../genai-perf/artifacts.ts";
import {
  fieldError,
  genaiPerfDefinitions,
  type ImportedRecord,
  type ImportedRun,
  isRecord,
  type MetricDefinitions,
} from "./types.ts";

/** AIPerf summary schema versions this importer was built from (real AIPerf output). */
export const AIPERF_SCHEMA_VERSIONS = ["1.4"];
const SUMMARY = "profile_export_aiperf.json";
const RECORDS = "profile_export.jsonl";

const NS_PER: Record<string, number> = { ns: 1, us: 1e3, ms: 1e6, sec: 1e9, s: 1e9 };

function definitions(tool: string, endpoint: Record<string, unknown>): MetricDefinitions {
  const d = genaiPerfDefinitions(tool);
  d.time_to_first_token.text =
    "first content response − request start (AIPerf's start_perf_ns, taken before the connection is acquired)";
  d.request_latency.text = "last response − request start (AIPerf's start_perf_ns)";
  if (endpoint["use_server_token_count"] === true)
    d.output_sequence_length = {
      tool,
      id: "osl:server-usage-completion-tokens",
      text: "the server's usage.completion_tokens (--use-server-token-count)",
    };
  if (endpoint["per_chunk_usage"] === true)
    d.inter_token_latency = {
      tool,
      id: "itl:(latency-ttft)/(osl-first-chunk-tokens)",
      text: "(request latency − TTFT) / (OSL − tokens of the first content chunk, from per-chunk usage)",
    };
  return d;
}

function metricNs(
  file: string,
  line: number,
  metrics: Record<string, unknown>,
  name: string,
): number | undefined {
  const m = metrics[name];
  if (m === undefined) return undefined;
  if (!isRecord(m) || typeof m["value"] !== "number")
    throw new InputFileError(file, line, `metrics.${name}: expected {value: number, unit}`);
  const per = NS_PER[String(m["unit"])];
  if (per === undefined)
    throw new InputFileError(
      file,
      line,
      `metrics.${name}.unit: expected one of ${Object.keys(NS_PER).join(", ")}, got ${JSON.stringify(m["unit"])}`,
    );
  return Math.round(m["value"] * per);
}

function tokens(
  file: string,
  line: number,
  metrics: Record<string, unknown>,
  name: string,
): number | undefined {
  const m = metrics[name];
  if (m === undefined) return undefined;
  if (!isRecord(m) || typeof m["value"] !== "number" || m["unit"] !== "tokens")
    throw new InputFileError(
      file,
      line,
      `metrics.${name}: expected {value: number, unit: "tokens"}`,
    );
  return m["value"];
}

function readRecords(file: string, model: string): ImportedRecord[] {
  const lines = readFileSync(file, "utf8").split("\n");
  const out: ImportedRecord[] = [];
  lines.forEach((text, i) => {
    const line = i + 1;
    if (text.trim() === "") return;
    let r: unknown;
    try {
      r = JSON.parse(text);
    } catch {
      throw new InputFileError(
        file,
        line,
        "not valid JSON: truncated or not an AIPerf record file",
      );
    }
    if (!isRecord(r) || !isRecord(r["metadata"]) || !isRecord(r["metrics"]))
      throw new InputFileError(
        file,
        line,
        "expected an AIPerf record {metadata, metrics[, error]}",
      );
    const md = r["metadata"];
    if (md["benchmark_phase"] !== "profiling") return; // warm-up records are not measured
    for (const k of ["request_start_ns", "request_end_ns"])
      if (typeof md[k] !== "number")
        throw new InputFileError(file, line, `metadata.${k}: expected integer ns`);
    // Big integers: take the digits from the text, not the double.
    const exact = (k: string) => new RegExp(`"${k}":\\s*(\\d+)`).exec(text)?.[1] ?? String(md[k]);
    const rec: ImportedRecord = {
      index: out.length,
      model,
      status: r["error"] ? "error" : "ok",
      sent_ns: exact("request_start_ns"),
      end_ns: exact("request_end_ns"),
    };
    const m = r["metrics"];
    const ttft = metricNs(file, line, m, "time_to_first_token");
    const latency = metricNs(file, line, m, "request_latency");
    const osl = tokens(file, line, m, "output_sequence_length");
    const isl = tokens(file, line, m, "input_sequence_length");
    if (ttft !== undefined) rec.ttft_ns = ttft;
    if (latency !== undefined) rec.latency_ns = latency;
    if (osl !== undefined) rec.osl_tokens = osl;
    if (isl !== undefined) rec.isl_tokens = isl;
    if (isRecord(r["error"])) {
      const e = r["error"];
      if (typeof e["code"] === "number") rec.http_status = e["code"];
      rec.error = `${e["type"] ?? "error"}: ${String(e["message"] ?? "").slice(0, 300)}`;
    } else if (latency === undefined)
      throw new InputFileError(
        file,
        line,
        "metrics.request_latency: missing on a record without error",
      );
    out.push(rec);
  });
  return out;
}

export function importAiperf(path: string): ImportedRun {
  const dir = resolve(path);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UserError(`${dir}: expected an AIPerf output folder`);
  const summaryFile = join(dir, SUMMARY);
  if (!existsSync(summaryFile))
    throw new UserError(`${dir}: no ${SUMMARY}: not an AIPerf output folder`, {
      hint: existsSync(join(dir, "profile_export.json"))
        ? "this looks like perf_analyzer or genai-perf output: use --from perf-analyzer or --from genai-perf"
        : "give the folder passed to aiperf profile --output-artifact-dir",
    });
  const s = readJsonFile<Record<string, unknown>>(summaryFile, "AIPerf summary");
  if (!AIPERF_SCHEMA_VERSIONS.includes(String(s["schema_version"])))
    throw fieldError(
      summaryFile,
      "schema_version",
      `one of ${AIPERF_SCHEMA_VERSIONS.join(", ")} (the AIPerf versions this importer was built from)`,
      s["schema_version"],
    );
  const version = typeof s["aiperf_version"] === "string" ? s["aiperf_version"] : "";
  if (s["is_complete"] !== true)
    throw fieldError(
      summaryFile,
      "is_complete",
      "true (AIPerf finished the run)",
      s["is_complete"],
    );
  const ic = s["input_config"];
  if (!isRecord(ic)) throw fieldError(summaryFile, "input_config", "an object", ic);
  const items = isRecord(ic["models"]) ? ic["models"]["items"] : undefined;
  if (
    !Array.isArray(items) ||
    items.length !== 1 ||
    !isRecord(items[0]) ||
    typeof items[0]["name"] !== "string"
  )
    throw fieldError(
      summaryFile,
      "input_config.models.items",
      "one model (multi-model AIPerf runs carry no model per record)",
      items,
    );
  const model = items[0]["name"] as string;
  const ep = ic["endpoint"];
  if (!isRecord(ep) || (ep["type"] !== "chat" && ep["type"] !== "completions"))
    throw fieldError(
      summaryFile,
      "input_config.endpoint.type",
      '"chat" or "completions"',
      isRecord(ep) ? ep["type"] : ep,
    );
  const endpointType = ep["type"] as "chat" | "completions";
  const phases = Array.isArray(ic["phases"]) ? ic["phases"] : [];
  const prof = phases.find((p) => isRecord(p) && p["kind"] === "profiling") as
    | Record<string, unknown>
    | undefined;
  if (!prof)
    throw fieldError(summaryFile, "input_config.phases", "a phase of kind profiling", ic["phases"]);
  const mode =
    prof["type"] === "concurrency"
      ? "concurrency"
      : prof["type"] === "request_rate"
        ? "request_rate"
        : undefined;
  const value = mode === "concurrency" ? prof["concurrency"] : prof["request_rate"];
  if (!mode || typeof value !== "number")
    throw fieldError(
      summaryFile,
      "input_config.phases[profiling].type",
      "concurrency or request_rate with its value",
      prof["type"],
    );
  const recordsFile = join(dir, RECORDS);
  if (!existsSync(recordsFile))
    throw new InputFileError(
      summaryFile,
      undefined,
      `${RECORDS} beside it is missing: the per-request records are what compare reads`,
    );
  const records = readRecords(recordsFile, model);
  const count = (k: string) => {
    const m = s[k];
    return isRecord(m) && typeof m["avg"] === "number" ? m["avg"] : 0;
  };
  const okCount = records.filter((r) => r.status === "ok").length;
  const errors = Array.isArray(s["error_summary"])
    ? (s["error_summary"] as unknown[]).reduce<number>(
        (t, e) => t + (isRecord(e) && typeof e["count"] === "number" ? e["count"] : 0),
        0,
      )
    : 0;
  if (okCount !== count("request_count") || records.length - okCount !== errors)
    throw new InputFileError(
      recordsFile,
      undefined,
      `${okCount} completed and ${records.length - okCount} failed records, but ${SUMMARY} counts ${count("request_count")} and ${errors}: truncated, or from another run`,
    );
  const copies = [
    summaryFile,
    recordsFile,
    join(dir, "profile_export_aiperf.csv"),
    join(dir, "inputs.json"),
  ].filter((f) => existsSync(f));
  const lp = { mode, value } as const;
  return {
    tool: "aiperf",
    toolVersion: version,
    sourceSchemaVersion: String(s["schema_version"]),
    source: dir,
    definitions: definitions(`aiperf ${version}`, ep),
    points: [
      {
        folder: runFolderName([model], endpointType, lp),
        model,
        endpointType,
        endpoint: endpointPath(endpointType),
        streaming: ep["streaming"] === true,
        mode,
        value,
        records,
        copies,
      },
    ],
    checks: [`${okCount} completed and ${errors} failed records agree with ${SUMMARY}`],
    notes: [],
  };
}

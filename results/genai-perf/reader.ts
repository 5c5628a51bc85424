/**
 * Readers for GenAI-Perf artifacts of era D and older: profile_export_genai_perf.json (nested or
 * flat input_config, old `output_token_throughput_per_request`), the CSV (old labels, fewer
 * percentile columns, LF or CRLF, "1,234.56" cells, N/A) and perf_analyzer's raw export with
 * exact integer nanoseconds.
 */
import type { RawRequest } from "./metrics.ts";
import { parseCsv } from "./pyformat.ts";
import type { MetricStats } from "./stats.ts";

export interface GenAiPerfJsonRead {
  /** "D" when input_config is the nested era-D block, "pre-D" when flat. */
  era: "D" | "pre-D";
  metrics: Record<string, MetricStats>;
  inputConfig: Record<string, unknown>;
  streaming?: boolean;
  concurrency?: number;
  requestRate?: number;
}

export function readGenAiPerfJson(text: string): GenAiPerfJsonRead {
  const obj = JSON.parse(text) as Record<string, unknown>;
  const metrics: Record<string, MetricStats> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (k === "input_config" || !v || typeof v !== "object") continue;
    const m = v as Record<string, unknown>;
    if (typeof m["unit"] !== "string" || typeof m["avg"] !== "number") continue;
    metrics[k] = m as unknown as MetricStats;
  }
  const ic = (obj["input_config"] ?? {}) as Record<string, unknown>;
  const nested = typeof ic["endpoint"] === "object" && ic["endpoint"] !== null;
  const out: GenAiPerfJsonRead = { era: nested ? "D" : "pre-D", metrics, inputConfig: ic };
  const num = (v: unknown) => (typeof v === "number" ? v : undefined);
  if (nested) {
    const ep = ic["endpoint"] as Record<string, unknown>;
    if (typeof ep["streaming"] === "boolean") out.streaming = ep["streaming"];
    const stim = ((ic["perf_analyzer"] as Record<string, unknown> | undefined)?.["stimulus"] ??
      {}) as Record<string, unknown>;
    out.concurrency = num(stim["concurrency"]);
    out.requestRate = num(stim["request_rate"]);
  } else {
    if (typeof ic["streaming"] === "boolean") out.streaming = ic["streaming"];
    out.concurrency = num(ic["concurrency"]);
    out.requestRate = num(ic["request_rate"]);
  }
  return out;
}

/** Metric by era-D name, falling back to pre-D names (per_request → per_user). */
export function metricOf(read: GenAiPerfJsonRead, name: string): MetricStats | undefined {
  const hit = read.metrics[name];
  if (hit) return hit;
  if (name === "output_token_throughput_per_user")
    return read.metrics["output_token_throughput_per_request"];
  return undefined;
}

export interface CsvMetricRow {
  label: string;
  /** snake_case metric name (old labels mapped onto era-D names). */
  name: string;
  unit: string;
  stats: Record<string, number | null>;
}

export interface CsvSystemRow {
  label: string;
  name: string;
  unit: string;
  value: number | null;
}

export interface GenAiPerfCsvRead {
  requestMetrics: CsvMetricRow[];
  systemMetrics: CsvSystemRow[];
  /** Percentile/stat columns present, in file order. */
  columns: string[];
}

/** "1,234.56" → 1234.56; N/A → null. */
export function parseCsvNumber(cell: string): number | null {
  const t = cell.trim();
  if (t === "" || t === "N/A") return null;
  const v = Number(t.replace(/,/g, ""));
  return Number.isNaN(v) ? null : v;
}

function splitLabel(label: string): { name: string; unit: string } {
  const m = /^(.*?)\s*\(([^)]*)\)\s*$/.exec(label);
  const base = (m ? m[1]! : label).trim();
  let unit = m ? m[2]! : "";
  let name = base.toLowerCase().replace(/\s+/g, "_");
  // Older genai-perf labels.
  if (name === "output_token_throughput" && unit === "per sec") unit = "tokens/sec";
  if (name === "output_token_throughput_per_request") name = "output_token_throughput_per_user";
  if (name === "request_throughput" && unit === "per sec") unit = "requests/sec";
  if (name === "request_goodput" && unit === "per sec") unit = "requests/sec";
  return { name, unit };
}

export function readGenAiPerfCsv(text: string): GenAiPerfCsvRead {
  const rows = parseCsv(text);
  const out: GenAiPerfCsvRead = { requestMetrics: [], systemMetrics: [], columns: [] };
  let section: "none" | "request" | "system" = "none";
  for (const row of rows) {
    if (row.length === 0 || (row.length === 1 && row[0] === "")) continue;
    if (row[0] === "Metric") {
      if (row[1] === "Value") section = "system";
      else {
        section = "request";
        out.columns = row.slice(1);
      }
      continue;
    }
    const { name, unit } = splitLabel(row[0]!);
    if (section === "request") {
      const stats: Record<string, number | null> = {};
      out.columns.forEach((c, i) => {
        stats[c] = parseCsvNumber(row[i + 1] ?? "");
      });
      out.requestMetrics.push({ label: row[0]!, name, unit, stats });
    } else if (section === "system") {
      out.systemMetrics.push({ label: row[0]!, name, unit, value: parseCsvNumber(row[1] ?? "") });
    }
  }
  return out;
}

/** Quotes integer literals of ≥ 16 digits outside strings so JSON.parse keeps them exact. */
function quoteBigIntegers(text: string): string {
  let out = "";
  let i = 0;
  let last = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      i++;
      while (i < text.length) {
        const d = text.charCodeAt(i);
        if (d === 92) i += 2;
        else if (d === 34) {
          i++;
          break;
        } else i++;
      }
      continue;
    }
    if ((c >= 48 && c <= 57) || c === 45) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) >= 48 && text.charCodeAt(j) <= 57) j++;
      const next = text[j];
      if (j - i >= 16 && next !== "." && next !== "e" && next !== "E") {
        out += `${text.slice(last, i)}"${text.slice(i, j)}"`;
        last = j;
      }
      i = j;
      continue;
    }
    i++;
  }
  return out + text.slice(last);
}

export interface ProfileExportExperiment {
  mode: string;
  value: number;
  requests: RawRequest[];
  windowBoundaries: bigint[];
}

export interface ProfileExportRead {
  endpoint: string;
  serviceKind: string;
  version?: string;
  experiments: ProfileExportExperiment[];
}

const big = (v: unknown): bigint =>
  typeof v === "bigint" ? v : BigInt(typeof v === "number" ? Math.round(v) : String(v));

/** A nanosecond time of the export at `path`: an integer (or a string of one), else an error naming it. */
function ns(v: unknown, path: string): bigint {
  try {
    if (typeof v === "number" && !Number.isFinite(v)) throw new Error("not finite");
    return big(v);
  } catch {
    throw new Error(
      `${path}: expected an integer time in ns, got ${JSON.stringify(v) ?? String(v)}`,
    );
  }
}

export function readProfileExport(text: string): ProfileExportRead {
  const obj = JSON.parse(quoteBigIntegers(text)) as Record<string, unknown>;
  if (typeof obj !== "object" || obj === null || Array.isArray(obj))
    throw new Error("the top level is not a JSON object");
  const exps = obj["experiments"] ?? [];
  if (!Array.isArray(exps)) throw new Error("experiments: expected a list");
  return {
    endpoint: String(obj["endpoint"] ?? ""),
    serviceKind: String(obj["service_kind"] ?? ""),
    version: typeof obj["version"] === "string" ? obj["version"] : undefined,
    experiments: (exps as Record<string, unknown>[]).map((e, i) => {
      const ex = (e["experiment"] ?? {}) as Record<string, unknown>;
      const reqs = e["requests"] ?? [];
      if (!Array.isArray(reqs)) throw new Error(`experiments[${i}].requests: expected a list`);
      return {
        mode: String(ex["mode"] ?? ""),
        value: Number(ex["value"] ?? 0),
        windowBoundaries: ((e["window_boundaries"] ?? []) as unknown[]).map((v, k) =>
          ns(v, `experiments[${i}].window_boundaries[${k}]`),
        ),
        requests: (reqs as Record<string, unknown>[]).map((r, j) => {
          const at = `experiments[${i}].requests[${j}]`;
          const stamps = r["response_timestamps"] ?? [];
          if (!Array.isArray(stamps)) throw new Error(`${at}.response_timestamps: expected a list`);
          return {
            timestamp: ns(r["timestamp"], `${at}.timestamp`),
            payload: String(
              (r["request_inputs"] as Record<string, unknown> | undefined)?.["payload"] ?? "",
            ),
            responseTimestamps: stamps.map((v, k) => ns(v, `${at}.response_timestamps[${k}]`)),
            responses: ((r["response_outputs"] ?? []) as Record<string, unknown>[]).map((o) =>
              String(o?.["response"] ?? ""),
            ),
          };
        }),
      };
    }),
  };
}

/**
 * Timings no real request can have, by record: a response before its request was sent, or
 * responses out of order (so the first token after the last, TTFT above the request latency).
 * Returns the first problem, naming experiment and request index, or undefined.
 */
export function profileExportProblem(exp: ProfileExportRead): string | undefined {
  for (const [i, e] of exp.experiments.entries())
    for (const [j, r] of e.requests.entries()) {
      let prev = r.timestamp;
      for (const [k, t] of r.responseTimestamps.entries()) {
        if (t < prev)
          return `experiments[${i}].requests[${j}].response_timestamps[${k}] = ${t} is before ${k === 0 ? `the request's timestamp ${r.timestamp}` : `response ${k - 1} (${prev})`}: impossible timings (a negative TTFT or latency)`;
        prev = t;
      }
    }
  return undefined;
}

/**
 * GenAI-Perf metric math from raw perf_analyzer-style records (see GENAI_PERF.md "Metric math").
 * Timestamps are bigint nanoseconds; differences are converted to numbers (exact below 2^53 ns).
 */
import { nonEmptyResponses, parseResponses, type ServerUsage } from "./sse.ts";
import { describe, type MetricStats, roundHalfEven } from "./stats.ts";

export interface RawRequest {
  /** Send time, ns since epoch. */
  timestamp: bigint;
  /** The exact JSON string sent. */
  payload: string;
  responseTimestamps: bigint[];
  responses: string[];
}

export type TokenCounter = (text: string) => number;

export interface RequestMetrics {
  startNs: bigint;
  endNs: bigint;
  latencyNs: number;
  ttftNs: number;
  ttstNs?: number;
  itlNs?: number;
  /** Output tokens/s seen by this user: 1e9 / ITL. */
  perUserTps?: number;
  osl: number;
  isl: number;
  outputText: string;
  usage?: ServerUsage;
  /** Non-empty responses (events with text). */
  responseCount: number;
}

/** Prompt text of a payload: chat message contents joined by a space, or the completions prompt. */
export function promptText(payload: unknown): string {
  if (!payload || typeof payload !== "object") return "";
  const p = payload as Record<string, unknown>;
  const partText = (c: unknown): string => {
    if (typeof c === "string") return c;
    if (Array.isArray(c))
      return c
        .map((x) =>
          x && typeof x === "object" && typeof (x as { text?: unknown }).text === "string"
            ? (x as { text: string }).text
            : "",
        )
        .filter((t) => t !== "")
        .join(" ");
    return "";
  };
  if (Array.isArray(p["messages"])) {
    return (p["messages"] as unknown[])
      .map((m) => partText((m as Record<string, unknown> | null)?.["content"]))
      .join(" ");
  }
  const prompt = p["prompt"];
  if (Array.isArray(prompt)) return prompt.map(partText).join(" ");
  return partText(prompt);
}

/**
 * Metrics of one request, or undefined when it produced no non-empty response (such a request is
 * a failure for our records; GenAI-Perf has no equivalent).
 */
export function requestMetrics(
  raw: RawRequest,
  count: TokenCounter,
  islCache?: Map<string, number>,
): RequestMetrics | undefined {
  const parsed = parseResponses(raw.responseTimestamps, raw.responses);
  const kept = nonEmptyResponses(parsed);
  if (kept.length === 0) return undefined;
  const first = kept[0]!;
  const last = kept[kept.length - 1]!;
  const latencyNs = Number(last.timestamp - raw.timestamp);
  const ttftNs = Number(first.timestamp - raw.timestamp);
  const outputText = kept.map((r) => r.text).join("");
  const osl = count(outputText);
  let isl = islCache?.get(raw.payload);
  if (isl === undefined) {
    let body: unknown;
    try {
      body = JSON.parse(raw.payload);
    } catch {
      body = undefined;
    }
    isl = count(promptText(body));
    islCache?.set(raw.payload, isl);
  }
  const m: RequestMetrics = {
    startNs: raw.timestamp,
    endNs: last.timestamp,
    latencyNs,
    ttftNs,
    osl,
    isl,
    outputText,
    responseCount: kept.length,
  };
  if (parsed.usage) m.usage = parsed.usage;
  if (kept.length > 1) {
    m.ttstNs = Number(kept[1]!.timestamp - first.timestamp);
    if (osl > 1) {
      m.itlNs = roundHalfEven((latencyNs - ttftNs) / (osl - 1));
      if (m.itlNs > 0) m.perUserTps = 1e9 / m.itlNs;
    }
  }
  return m;
}

export type GoodputKey =
  | "request_latency"
  | "time_to_first_token"
  | "time_to_second_token"
  | "inter_token_latency"
  | "output_token_throughput_per_user";

export const GOODPUT_KEYS: readonly GoodputKey[] = [
  "request_latency",
  "time_to_first_token",
  "time_to_second_token",
  "inter_token_latency",
  "output_token_throughput_per_user",
];

export type GoodputTargets = Partial<Record<GoodputKey, number>>;

/** A request is good when it meets every target at once (times in ms: ≤; per-user tokens/s: ≥). */
export function isGood(m: RequestMetrics, targets: GoodputTargets): boolean {
  const ms = (ns: number | undefined) => (ns === undefined ? undefined : ns / 1e6);
  for (const [k, target] of Object.entries(targets) as [GoodputKey, number][]) {
    const v =
      k === "request_latency"
        ? ms(m.latencyNs)
        : k === "time_to_first_token"
          ? ms(m.ttftNs)
          : k === "time_to_second_token"
            ? ms(m.ttstNs)
            : k === "inter_token_latency"
              ? ms(m.itlNs)
              : m.perUserTps;
    if (v === undefined) return false;
    if (k === "output_token_throughput_per_user" ? v < target : v > target) return false;
  }
  return true;
}

export interface RunWideStat {
  unit: string;
  avg: number;
}

/** profile_export_genai_perf.json minus input_config, keys in GenAI-Perf's order. */
export interface GenAiPerfStats {
  request_throughput: RunWideStat;
  request_latency: MetricStats;
  request_goodput?: RunWideStat;
  request_count: RunWideStat;
  time_to_first_token?: MetricStats;
  time_to_second_token?: MetricStats;
  inter_token_latency?: MetricStats;
  output_token_throughput: RunWideStat;
  output_token_throughput_per_user?: MetricStats;
  output_sequence_length: MetricStats;
  input_sequence_length: MetricStats;
}

const NS_TO_MS = 1 / 1e6;

/** Run-wide statistics (GENAI_PERF.md steps 5–6). `metrics` must be non-empty. */
export function summarize(
  metrics: readonly RequestMetrics[],
  goodput?: GoodputTargets,
): GenAiPerfStats {
  if (metrics.length === 0) throw new Error("no successful requests to summarize");
  let minStart = metrics[0]!.startNs;
  let maxEnd = metrics[0]!.endNs;
  for (const m of metrics) {
    if (m.startNs < minStart) minStart = m.startNs;
    if (m.endNs > maxEnd) maxEnd = m.endNs;
  }
  const durationS = Number(maxEnd - minStart) / 1e9;
  const defined = (xs: (number | undefined)[]) => xs.filter((x): x is number => x !== undefined);
  const ttst = defined(metrics.map((m) => m.ttstNs));
  const itl = defined(metrics.map((m) => m.itlNs));
  const perUser = defined(metrics.map((m) => m.perUserTps));
  let totalOsl = 0;
  for (const m of metrics) totalOsl += m.osl;
  const out: GenAiPerfStats = {
    request_throughput: { unit: "requests/sec", avg: metrics.length / durationS },
    request_latency: describe(
      metrics.map((m) => m.latencyNs),
      "ms",
      NS_TO_MS,
    ),
    request_count: { unit: "count", avg: metrics.length },
    time_to_first_token: describe(
      metrics.map((m) => m.ttftNs),
      "ms",
      NS_TO_MS,
    ),
    output_token_throughput: { unit: "tokens/sec", avg: totalOsl / durationS },
    output_sequence_length: describe(
      metrics.map((m) => m.osl),
      "tokens",
    ),
    input_sequence_length: describe(
      metrics.map((m) => m.isl),
      "tokens",
    ),
  };
  if (goodput && Object.keys(goodput).length > 0) {
    const good = metrics.filter((m) => isGood(m, goodput)).length;
    out.request_goodput = { unit: "requests/sec", avg: good / durationS };
  }
  if (ttst.length > 0) out.time_to_second_token = describe(ttst, "ms", NS_TO_MS);
  if (itl.length > 0) out.inter_token_latency = describe(itl, "ms", NS_TO_MS);
  if (perUser.length > 0)
    out.output_token_throughput_per_user = describe(perUser, "tokens/sec/user");
  return orderStats(out);
}

export const STATS_KEY_ORDER = [
  "request_throughput",
  "request_latency",
  "request_goodput",
  "request_count",
  "time_to_first_token",
  "time_to_second_token",
  "inter_token_latency",
  "output_token_throughput",
  "output_token_throughput_per_user",
  "output_sequence_length",
  "input_sequence_length",
] as const;

export function orderStats(s: GenAiPerfStats): GenAiPerfStats {
  const out: Record<string, unknown> = {};
  for (const k of STATS_KEY_ORDER) if (s[k] !== undefined) out[k] = s[k];
  return out as unknown as GenAiPerfStats;
}

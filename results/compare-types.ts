import type { ArmDifference } from "../stacks/arm-differences.ts";

/**
 * The comparison data model: what `inferbench compare` computes and every report format renders.
 * Side A and side B are usually the baseline and managed arms of one run; they may also be two
 * runs or two GenAI-Perf artifact folders (labels say which).
 */

export type Verdict = "better" | "worse" | "within noise" | "n/a";

export interface Quantiles {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
}

/** Server-side view of one side at one load point (deltas of counters over the point). */
export interface ServerView {
  /** Prefix-cache hits / queries (tokens), 0-1; undefined when the engines do not report it. */
  prefixHitRate?: number;
  preemptions?: number;
  kvUsageMean?: number;
  kvUsageMax?: number;
  queueDepthMean?: number;
  /** Share of requests per replica (from x-inferbench-backend), 0-1, summing to 1. */
  replicaShare: Record<string, number>;
  /** Time series sampled during the point, per replica: seconds since point start. */
  timeseries?: {
    tSec: number[];
    replicas: Record<string, { kvUsage: number[]; queueDepth: number[] }>;
  };
}

export interface SideSummary {
  label: string;
  /** Requests attempted (measured, warm-up excluded). */
  requests: number;
  errors: number;
  errorRate: number;
  /** Achieved rates: completed requests (and output tokens) per second over the measured window. */
  achievedRps: number;
  outputTokensPerSec: number;
  /** Requests meeting every SLO target per second; undefined without SLO targets. */
  goodputRps?: number;
  /** Requested rate when the load point is a rate (so charts can show requested vs achieved). */
  requestedRps?: number;
  ttftMs?: Quantiles;
  itlMs?: Quantiles;
  e2eMs: Quantiles;
  /** False when the load generator fell behind schedule: not a result, only marked. */
  valid: boolean;
  invalidReason?: string;
  repeats: number;
  server: ServerView;
  /** Host price ÷ output token rate, USD per 1M output tokens (runs with a price only). */
  usdPerMillionOutputTokens?: number;
  /** Host price ÷ goodput (÷ completed requests without SLOs), USD per good request. */
  usdPerGoodRequest?: number;
}

export interface MetricDelta {
  /** e.g. `ttft_p99_ms`, `request_throughput`. */
  metric: string;
  label: string;
  unit: string;
  betterWhen: "lower" | "higher";
  a: number;
  b: number;
  /** (b - a) / a × 100. */
  deltaPct: number;
  /** 95% confidence interval of deltaPct. */
  ciLowPct: number;
  ciHighPct: number;
  verdict: Verdict;
  /** How the interval was computed: `bootstrap over N+M requests` or `t over R repeats`. */
  method: string;
}

export interface ComparisonRow {
  model: string;
  /** `concurrency 8`, `request rate 4.0/s`, `trace`. */
  point: string;
  /** Numeric load value for charts (concurrency or requested rate). */
  pointValue: number;
  pointKind: "concurrency" | "request-rate" | "trace";
  a: SideSummary;
  b: SideSummary;
  deltas: MetricDelta[];
}

export interface Comparison {
  schemaVersion: 1;
  createdAt: string;
  /** Run ids or folders compared. */
  sources: { a: string; b: string };
  labels: { a: string; b: string };
  /** True when any side ran on emulated engines: every rendering must say EMULATED. */
  emulated: boolean;
  /** Which side is emulated, so a mixed comparison says which numbers are which. */
  emulatedSides: { a: boolean; b: boolean };
  slo: { ttftMs?: number; itlMs?: number; e2eMs?: number };
  /** Short description of the workload both sides ran. */
  workload: string;
  rows: ComparisonRow[];
  /** Plain-language findings, e.g. "managed does not win at concurrency 1". */
  notes: string[];
  /** What the run cost and how the per-point prices were made (runs with a price only). */
  cost?: RunCost;
  /** The arms of one run: what differs between their plans, and a warning when not one thing. */
  arms?: { differences: ArmDifference[]; warning?: string };
  /** What each arm ran, as the engines and the host reported it (runs that recorded it). */
  ran?: { a: ArmRan; b: ArmRan };
}

/** Evidence of what served an arm, beside what its plan asked for. */
export interface ArmRan {
  /** Distinct `GET /version` answers of the arm's engines over its points. */
  engineVersions: string[];
  /** service → image id (and digest when pulled), from the host after deploy. */
  images?: Record<string, string>;
}

export interface RunCost {
  currency: "USD";
  hourlyUsd: number;
  /** Where the price comes from: the price table and its date, or the user's stated price. */
  source: string;
  /** GPUs billed per hour of the host (a3-highgpu-8g: all 8, however many the plan uses). */
  gpus?: number;
  /** Billing window, provisioned → destroyed, when the run recorded both ends. */
  window?: { start: string; end: string; hours: number };
  gpuHours?: number;
  totalUsd?: number;
  /** Always an estimate: list prices, not a bill. */
  estimate: true;
}

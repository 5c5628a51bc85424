/**
 * Comparison of two sides (the arms of one run, two runs, or two artifact folders), per model ×
 * load point: latency quantiles, throughput, goodput, errors, the B-vs-A delta with a 95%
 * interval and a verdict, and the server view. Pure: data in, Comparison out.
 */
import { UserError } from "../lib/errors.ts";
import { groupBy } from "../lib/group.ts";
import { percentileSorted } from "../lib/percentile.ts";
import {
  type ArmDifference,
  armDifferences,
  attributionWarning,
} from "../stacks/arm-differences.ts";
import { GCP_MACHINES } from "../stacks/catalog.ts";
import { isDescendingSweep } from "../stacks/load-point.ts";
import type { StackPlan } from "../stacks/plan-types.ts";
import {
  bootstrapDeltas,
  type DeltaInterval,
  repeatsDelta,
  type Statistic,
  statisticOf,
} from "./bootstrap.ts";
import type {
  ArmRan,
  Comparison,
  ComparisonRow,
  MetricDelta,
  Quantiles,
  RunCost,
  ServerView,
  SideSummary,
  Verdict,
} from "./compare-types.ts";
import { mean } from "./genai-perf/stats.ts";
import type { RunManifest, SaturationProbe } from "./store.ts";

/** One measured request as the comparison needs it (failed requests carry ok=false). */
export interface RequestSample {
  ok: boolean;
  /** Send and last-byte times, ms on any common clock. */
  startMs: number;
  endMs: number;
  ttftMs?: number;
  itlMs?: number;
  osl?: number;
  backend?: string;
  repeat?: number;
}

export interface PointData {
  model: string;
  point: string;
  pointKind: ComparisonRow["pointKind"];
  pointValue: number;
  requestedRps?: number;
  samples: RequestSample[];
  repeats: number;
  valid: boolean;
  invalidReason?: string;
  server?: Omit<ServerView, "replicaShare">;
}

export interface SideData {
  label: string;
  source: string;
  emulated: boolean;
  slo: Comparison["slo"];
  /** What the workload was; sides whose descriptors differ are not comparable without --force. */
  workload: Record<string, string | number | boolean>;
  points: PointData[];
}

export interface CompareOptions {
  force?: boolean;
  seed?: number;
  /** The two arms of one run: their plans (what differs), see runContext(). */
  run?: RunContext;
}

/** What a comparison of a run's arms knows beyond the measurements. */
export interface RunContext {
  plans: { a: StackPlan; b: StackPlan };
  /** A sweep of auto request rates: the probe that set its rates. */
  probe?: SaturationProbe;
  /** The host's price and the billing window, from the manifest's infra facts. */
  cost?: RunCost;
  /** What each arm ran (engine versions, image ids), from the run folder. */
  ran?: { a: ArmRan; b: ArmRan };
}

/** GPUs billed per host hour: the machine type's, else what the host reported, else the plan's. */
function billedGpus(m: Partial<RunManifest>, plan: StackPlan, arm: string): number | undefined {
  const cfg = (m.config as Record<string, { gcp?: { machineType?: string } }> | undefined)?.[arm];
  const machine = cfg?.gcp?.machineType;
  if (m.target === "gcp-vm" && machine && GCP_MACHINES[machine]) return GCP_MACHINES[machine]!.gpus;
  const reported = m.infra?.hostFacts?.gpus;
  if (reported && reported !== "none") return reported.split(";").length;
  return plan.hosts[0]?.gpuIds.length;
}

/** The run's cost from its billing window and the price it recorded (undefined without a price). */
export function runCost(
  m: Partial<RunManifest>,
  plan: StackPlan,
  arm: string,
): RunCost | undefined {
  const billing = m.infra?.billing;
  const hourly = billing?.hourlyUsd;
  if (hourly === undefined) return undefined;
  let source =
    m.target === "ssh"
      ? "ssh.hourlyUsd: the price stated for this host in the stack"
      : m.target === "endpoint"
        ? "endpoint.hourlyUsd: the price stated for this endpoint in the stack"
        : plan.cost
          ? `${plan.cost.basis}; ${plan.cost.source}`
          : "the price recorded by the run";
  if (m.emulated)
    source +=
      " — EMULATED run: the price is the host's, the throughput is engine-sim's, so these $ figures describe no GPU";
  const gpus = billedGpus(m, plan, arm);
  const cost: RunCost = { currency: "USD", hourlyUsd: hourly, source, estimate: true };
  if (gpus !== undefined) cost.gpus = gpus;
  const start = billing?.start ? Date.parse(billing.start) : Number.NaN;
  const end = billing?.end ? Date.parse(billing.end) : Number.NaN;
  if (Number.isFinite(start) && Number.isFinite(end) && end >= start) {
    const hours = (end - start) / 3_600_000;
    cost.window = { start: billing!.start!, end: billing!.end!, hours };
    cost.totalUsd = hourly * hours;
    if (gpus !== undefined) cost.gpuHours = gpus * hours;
  }
  return cost;
}

/**
 * What differs in what the arms ran, beyond their plans: engine versions as the engines reported
 * them, and image ids per service (a tag that moved between two deploys shows here). Pure.
 */
export function ranDifferences(a: ArmRan, b: ArmRan): ArmDifference[] {
  const out: ArmDifference[] = [];
  const va = a.engineVersions.join("; ");
  const vb = b.engineVersions.join("; ");
  if (va && vb && va !== vb)
    out.push({ factor: "engine", what: "engine version (as run)", a: va, b: vb });
  for (const [service, id] of Object.entries(a.images ?? {})) {
    const other = b.images?.[service];
    if (other !== undefined && other !== id)
      out.push({
        factor: service === "router" ? "router" : "engine",
        what: `${service} image (as run)`,
        a: id,
        b: other,
      });
  }
  return out;
}

/** The context of a stored run's two arms (side A = first arm), from its manifest. */
export function runContext(
  m: Pick<RunManifest, "arms" | "plans"> & Partial<RunManifest>,
): RunContext | undefined {
  const [a, b] = m.arms;
  const pa = a ? m.plans[a] : undefined;
  const pb = b ? m.plans[b] : undefined;
  if (!pa || !pb) return undefined;
  const cost = runCost(m, pa, a!);
  return {
    plans: { a: pa, b: pb },
    ...(cost ? { cost } : {}),
    ...(m.probe ? { probe: m.probe } : {}),
  };
}

/** Where an auto-rate sweep's rates came from (the comparison says it beside the figures). */
export function probeNote(p: SaturationProbe): string {
  const arms = Object.entries(p.perArm)
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(", ");
  return `Request rates are fractions (${p.fractions.map((f) => `${Math.round(f * 1000) / 10} %`).join(", ")}) of the probed saturation, ${p.saturationRps.toFixed(2)} req/s: the higher of the arms' closed-loop throughputs at concurrency ${p.concurrency} (${arms} req/s; probe run ${p.runId}, ${p.requests} requests per arm).`;
}

/** Per-side prices at a load point: the host's price per second over what the arm produced. */
export function priceSide(s: SideSummary, hourlyUsd: number): void {
  const perSec = hourlyUsd / 3600;
  if (s.outputTokensPerSec > 0) s.usdPerMillionOutputTokens = (perSec / s.outputTokensPerSec) * 1e6;
  const good = s.goodputRps ?? s.achievedRps;
  if (good > 0) s.usdPerGoodRequest = perSec / good;
}

/** Describes workload differences; empty when comparable. */
export function workloadDifferences(a: SideData["workload"], b: SideData["workload"]): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys
    .filter((k) => a[k] !== b[k])
    .map((k) => `${k}: ${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])}`);
}

function quantiles(values: number[]): Quantiles | undefined {
  if (values.length === 0) return undefined;
  const s = Float64Array.from(values).sort() as unknown as number[];
  return {
    mean: mean(s),
    p50: percentileSorted(s, 50),
    p90: percentileSorted(s, 90),
    p99: percentileSorted(s, 99),
  };
}

interface Windowed {
  windowSec: number;
  perRepeat: { windowSec: number; ok: RequestSample[]; all: RequestSample[] }[];
}

/** Measured window per repeat: first send to last byte, summed over repeats. */
function windows(samples: readonly RequestSample[]): Windowed {
  const byRepeat = groupBy(samples, (s) => s.repeat ?? 0);
  const perRepeat = [...byRepeat.entries()]
    .sort((x, y) => x[0] - y[0])
    .map(([, all]) => {
      let start = Number.POSITIVE_INFINITY;
      let end = Number.NEGATIVE_INFINITY;
      for (const s of all) {
        if (s.startMs < start) start = s.startMs;
        if (s.endMs > end) end = s.endMs;
      }
      return { windowSec: Math.max(1e-9, (end - start) / 1000), ok: all.filter((s) => s.ok), all };
    });
  return { windowSec: perRepeat.reduce((t, r) => t + r.windowSec, 0), perRepeat };
}

export function isGoodRequest(s: RequestSample, slo: Comparison["slo"]): boolean {
  if (!s.ok) return false;
  if (slo.ttftMs !== undefined && !(s.ttftMs !== undefined && s.ttftMs <= slo.ttftMs)) return false;
  if (slo.itlMs !== undefined && s.itlMs !== undefined && s.itlMs > slo.itlMs) return false;
  if (slo.e2eMs !== undefined && s.endMs - s.startMs > slo.e2eMs) return false;
  return true;
}

export function summarizeSide(label: string, p: PointData, slo: Comparison["slo"]): SideSummary {
  const w = windows(p.samples);
  const ok = p.samples.filter((s) => s.ok);
  const errors = p.samples.length - ok.length;
  const share: Record<string, number> = {};
  for (const s of ok) if (s.backend) share[s.backend] = (share[s.backend] ?? 0) + 1;
  const attributed = Object.values(share).reduce((t, n) => t + n, 0);
  for (const k of Object.keys(share)) share[k] = share[k]! / attributed;
  const hasSlo = slo.ttftMs !== undefined || slo.itlMs !== undefined || slo.e2eMs !== undefined;
  const summary: SideSummary = {
    label,
    requests: p.samples.length,
    errors,
    errorRate: p.samples.length ? errors / p.samples.length : 0,
    achievedRps: ok.length / w.windowSec,
    outputTokensPerSec: ok.reduce((t, s) => t + (s.osl ?? 0), 0) / w.windowSec,
    e2eMs: quantiles(ok.map((s) => s.endMs - s.startMs)) ?? {
      mean: Number.NaN,
      p50: Number.NaN,
      p90: Number.NaN,
      p99: Number.NaN,
    },
    valid: p.valid,
    repeats: p.repeats,
    server: { ...(p.server ?? {}), replicaShare: share },
  };
  const ttft = quantiles(ok.flatMap((s) => (s.ttftMs === undefined ? [] : [s.ttftMs])));
  if (ttft) summary.ttftMs = ttft;
  const itl = quantiles(ok.flatMap((s) => (s.itlMs === undefined ? [] : [s.itlMs])));
  if (itl) summary.itlMs = itl;
  if (hasSlo) summary.goodputRps = ok.filter((s) => isGoodRequest(s, slo)).length / w.windowSec;
  if (p.requestedRps !== undefined) summary.requestedRps = p.requestedRps;
  if (p.invalidReason !== undefined) summary.invalidReason = p.invalidReason;
  return summary;
}

export function verdictOf(low: number, high: number, betterWhen: "lower" | "higher"): Verdict {
  if (!Number.isFinite(low) || !Number.isFinite(high)) return "n/a";
  if (low <= 0 && high >= 0) return "within noise";
  const decreased = high < 0;
  return decreased === (betterWhen === "lower") ? "better" : "worse";
}

interface LatencyFamily {
  name: string;
  label: string;
  pick: (s: RequestSample) => number | undefined;
}

const LATENCY_FAMILIES: LatencyFamily[] = [
  { name: "ttft", label: "TTFT", pick: (s) => s.ttftMs },
  { name: "itl", label: "ITL", pick: (s) => s.itlMs },
  { name: "e2e", label: "E2E latency", pick: (s) => s.endMs - s.startMs },
];

const LATENCY_STATS: { q: string; stat: Statistic }[] = [
  { q: "p50", stat: { kind: "quantile", p: 50 } },
  { q: "p90", stat: { kind: "quantile", p: 90 } },
  { q: "p99", stat: { kind: "quantile", p: 99 } },
  { q: "mean", stat: { kind: "mean" } },
];

function latencyDeltas(a: PointData, b: PointData, seed: number): MetricDelta[] {
  const out: MetricDelta[] = [];
  const repeats = Math.min(a.repeats, b.repeats);
  const stats = LATENCY_STATS.map((x) => x.stat);
  for (const f of LATENCY_FAMILIES) {
    const values = (p: PointData, repeat?: number) =>
      p.samples.flatMap((s) => {
        if (!s.ok || (repeat !== undefined && (s.repeat ?? 0) !== repeat)) return [];
        const v = f.pick(s);
        return v === undefined ? [] : [v];
      });
    const av = values(a);
    const bv = values(b);
    if (av.length === 0 || bv.length === 0) continue;
    let intervals: DeltaInterval[];
    if (repeats >= 2) {
      const rs = Array.from({ length: repeats }, (_, r) => r);
      const sortedPerRepeat = (p: PointData) =>
        rs.map((r) => Float64Array.from(values(p, r)).sort() as unknown as number[]);
      const sa = sortedPerRepeat(a);
      const sb = sortedPerRepeat(b);
      intervals = stats.map((st) =>
        repeatsDelta(
          sa.map((x) => statisticOf(x, st)),
          sb.map((x) => statisticOf(x, st)),
        ),
      );
    } else {
      intervals = bootstrapDeltas(av, bv, stats, seed);
    }
    intervals.forEach((d, i) => {
      const q = LATENCY_STATS[i]!.q;
      out.push({
        metric: `${f.name}_${q}_ms`,
        label: `${f.label} ${q}`,
        unit: "ms",
        betterWhen: "lower",
        a: d.a,
        b: d.b,
        deltaPct: d.deltaPct,
        ciLowPct: d.lowPct,
        ciHighPct: d.highPct,
        verdict: verdictOf(d.lowPct, d.highPct, "lower"),
        method: d.method,
      });
    });
  }
  return out;
}

function rateDeltas(
  a: PointData,
  b: PointData,
  sa: SideSummary,
  sb: SideSummary,
  slo: Comparison["slo"],
): MetricDelta[] {
  const defs: {
    metric: string;
    label: string;
    unit: string;
    betterWhen: "lower" | "higher";
    of: (w: Windowed["perRepeat"][number]) => number;
    whole: (s: SideSummary) => number | undefined;
  }[] = [
    {
      metric: "request_throughput",
      label: "request throughput",
      unit: "req/s",
      betterWhen: "higher",
      of: (r) => r.ok.length / r.windowSec,
      whole: (s) => s.achievedRps,
    },
    {
      metric: "output_token_throughput",
      label: "output token throughput",
      unit: "tokens/s",
      betterWhen: "higher",
      of: (r) => r.ok.reduce((t, s) => t + (s.osl ?? 0), 0) / r.windowSec,
      whole: (s) => s.outputTokensPerSec,
    },
    {
      metric: "error_rate",
      label: "error rate",
      unit: "%",
      betterWhen: "lower",
      of: (r) => (r.all.length ? (100 * (r.all.length - r.ok.length)) / r.all.length : 0),
      whole: (s) => 100 * s.errorRate,
    },
  ];
  if (sa.goodputRps !== undefined) {
    defs.push({
      metric: "request_goodput",
      label: "goodput",
      unit: "req/s",
      betterWhen: "higher",
      of: (r) => r.ok.filter((s) => isGoodRequest(s, slo)).length / r.windowSec,
      whole: (s) => s.goodputRps,
    });
  }
  const wa = windows(a.samples).perRepeat;
  const wb = windows(b.samples).perRepeat;
  return defs.flatMap((d) => {
    const av = d.whole(sa);
    const bv = d.whole(sb);
    if (av === undefined || bv === undefined) return [];
    const r = Math.min(wa.length, wb.length);
    let low = Number.NaN;
    let high = Number.NaN;
    let method = "one repeat: no interval for run-wide rates (use run.repeats ≥ 2)";
    let deltaPct = av === 0 ? (bv === 0 ? 0 : Number.POSITIVE_INFINITY) : ((bv - av) / av) * 100;
    if (r >= 2 && wa.every((x) => d.of(x) > 0)) {
      const t = repeatsDelta(wa.slice(0, r).map(d.of), wb.slice(0, r).map(d.of));
      low = t.lowPct;
      high = t.highPct;
      deltaPct = t.deltaPct;
      method = t.method;
    }
    if (d.metric === "error_rate" && av === 0 && bv === 0) method = "no errors on either side";
    return [
      {
        metric: d.metric,
        label: d.label,
        unit: d.unit,
        betterWhen: d.betterWhen,
        a: av,
        b: bv,
        deltaPct,
        ciLowPct: low,
        ciHighPct: high,
        verdict: verdictOf(low, high, d.betterWhen),
        method,
      },
    ];
  });
}

export function compareSides(a: SideData, b: SideData, opts: CompareOptions = {}): Comparison {
  const diffs = workloadDifferences(a.workload, b.workload);
  if (diffs.length > 0 && !opts.force) {
    throw new UserError(
      `refusing to compare ${a.source} with ${b.source}: their workloads differ:\n  ${diffs.join("\n  ")}`,
      {
        hint: "compare like with like, or pass --force to compare anyway (the report will say so)",
      },
    );
  }
  const key = (p: PointData) => `${p.model}\u0000${p.point}`;
  const bPoints = new Map(b.points.map((p) => [key(p), p]));
  const slo = { ...a.slo };
  const rows: ComparisonRow[] = [];
  const notes: string[] = [];
  if (diffs.length > 0)
    notes.push(`Compared with --force although the workloads differ (${diffs.join("; ")}).`);
  for (const pa of a.points) {
    const pb = bPoints.get(key(pa));
    if (!pb) {
      notes.push(`${pa.model} at ${pa.point}: only ${a.label} has this point.`);
      continue;
    }
    const sa = summarizeSide(a.label, pa, slo);
    const sb = summarizeSide(b.label, pb, slo);
    const price = opts.run?.cost?.hourlyUsd;
    if (price !== undefined && sa.valid && sb.valid) {
      priceSide(sa, price);
      priceSide(sb, price);
    }
    const deltas =
      sa.valid && sb.valid
        ? [...latencyDeltas(pa, pb, opts.seed ?? 1), ...rateDeltas(pa, pb, sa, sb, slo)]
        : [];
    if (!sa.valid || !sb.valid) {
      notes.push(
        `${pa.model} at ${pa.point}: INVALID (${[sa, sb]
          .filter((s) => !s.valid)
          .map((s) => `${s.label}: ${s.invalidReason ?? "load generator fell behind"}`)
          .join("; ")}); no comparison drawn.`,
      );
    }
    rows.push({
      model: pa.model,
      point: pa.point,
      pointKind: pa.pointKind,
      pointValue: pa.pointValue,
      a: sa,
      b: sb,
      deltas,
    });
  }
  for (const pb of b.points)
    if (!a.points.some((p) => key(p) === key(pb)))
      notes.push(`${pb.model} at ${pb.point}: only ${b.label} has this point.`);
  notes.push(...findings(rows, a.label, b.label));
  let arms: Comparison["arms"];
  if (opts.run) {
    const ran = opts.run.ran;
    const differences = [
      ...armDifferences(opts.run.plans.a, opts.run.plans.b),
      ...(ran ? ranDifferences(ran.a, ran.b) : []),
    ];
    const warning = attributionWarning(differences);
    arms = { differences, ...(warning ? { warning } : {}) };
    if (warning) notes.unshift(warning);
    if (opts.run.probe) notes.push(probeNote(opts.run.probe));
    if (isDescendingSweep(opts.run.plans.a.runner.loadPoints))
      notes.push(
        "The load points ran heaviest first (descending): each point's requests warm the prefix and KV caches that the lighter points after it use, so those may look better than they would alone.",
      );
  }
  return {
    schemaVersion: 1,
    createdAt: new Date().toISOString(),
    sources: { a: a.source, b: b.source },
    labels: { a: a.label, b: b.label },
    emulated: a.emulated || b.emulated,
    emulatedSides: { a: a.emulated, b: b.emulated },
    slo,
    workload: Object.entries(a.workload)
      .map(([k, v]) => `${k}=${v}`)
      .join(", "),
    rows,
    notes,
    ...(opts.run?.cost ? { cost: opts.run.cost } : {}),
    ...(arms ? { arms } : {}),
    ...(opts.run?.ran ? { ran: opts.run.ran } : {}),
  };
}

/** Plain statements of where B wins and where it does not (the report must say both). */
export function findings(rows: readonly ComparisonRow[], la: string, lb: string): string[] {
  const out: string[] = [];
  for (const row of rows) {
    const d =
      row.deltas.find((x) => x.metric === "ttft_p99_ms") ??
      row.deltas.find((x) => x.metric === "e2e_p99_ms");
    if (!d) continue;
    const size = `${Math.abs(d.deltaPct).toFixed(1)}%`;
    if (d.verdict === "better")
      out.push(`${row.model} at ${row.point}: ${lb} improves ${d.label} by ${size} over ${la}.`);
    else if (d.verdict === "worse")
      out.push(`${row.model} at ${row.point}: ${lb} is WORSE than ${la} on ${d.label} (+${size}).`);
    else if (d.verdict === "within noise")
      out.push(
        `${row.model} at ${row.point}: ${lb} does not beat ${la} on ${d.label} (difference within noise).`,
      );
  }
  return out;
}

const COST_METRICS: [string, (s: SideSummary) => number | undefined][] = [
  ["usd_per_1m_output_tokens", (s) => s.usdPerMillionOutputTokens],
  ["usd_per_good_request", (s) => s.usdPerGoodRequest],
];

/** The comparison table as CSV (one row per model × point × metric). */
export function comparisonCsv(c: Comparison): string {
  const header = [
    "model",
    "point",
    "metric",
    "unit",
    c.labels.a,
    c.labels.b,
    "delta_pct",
    "ci_low_pct",
    "ci_high_pct",
    "verdict",
    "method",
    `${c.labels.a}_valid`,
    `${c.labels.b}_valid`,
    "emulated",
  ];
  const esc = (v: string) => (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const num = (x: number) => (Number.isFinite(x) ? String(Math.round(x * 1e6) / 1e6) : "");
  const lines = [header.join(",")];
  for (const r of c.rows) {
    for (const d of r.deltas) {
      lines.push(
        [
          r.model,
          r.point,
          d.metric,
          d.unit,
          num(d.a),
          num(d.b),
          num(d.deltaPct),
          num(d.ciLowPct),
          num(d.ciHighPct),
          d.verdict,
          d.method,
          String(r.a.valid),
          String(r.b.valid),
          String(c.emulated),
        ]
          .map(esc)
          .join(","),
      );
    }
    // Prices are derived from the rates above (no interval of their own); the source is named.
    for (const [metric, pick] of COST_METRICS) {
      const a = pick(r.a);
      const b = pick(r.b);
      if (a === undefined || b === undefined) continue;
      lines.push(
        [
          r.model,
          r.point,
          metric,
          "USD",
          num(a),
          num(b),
          num(((b - a) / a) * 100),
          "",
          "",
          b < a ? "cheaper" : b > a ? "dearer" : "same",
          `estimate: host price ${c.cost?.hourlyUsd ?? "?"} USD/h ÷ measured rate (${c.cost?.source ?? ""})`,
          String(r.a.valid),
          String(r.b.valid),
          String(c.emulated),
        ]
          .map(esc)
          .join(","),
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

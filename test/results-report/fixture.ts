/** Deterministic Comparison fixtures for the report tests (no randomness: values from formulas). */
import type {
  Comparison,
  ComparisonRow,
  MetricDelta,
  Quantiles,
  SideSummary,
  Verdict,
} from "../../results/compare-types.ts";

export const EVIL_MODEL = `evil<script>alert("x")</script>&'model'|*`;
export const INVALID_REASON = "schedule lag p99 850 ms > 100 ms at 4.0 req/s";

const quant = (base: number): Quantiles => ({
  mean: base * 1.1,
  p50: base,
  p90: base * 1.6,
  p99: base * 2.4,
});

function side(
  label: string,
  load: number,
  factor: number,
  replicas: string[],
  withTs: boolean,
  valid = true,
): SideSummary {
  const rps = load * 0.97;
  const share = Object.fromEntries(
    replicas.map((r, i) => [r, (i + 1) / ((replicas.length * (replicas.length + 1)) / 2)]),
  );
  const tSec = Array.from({ length: 30 }, (_, i) => i * 2);
  return {
    label,
    requests: 200 + load * 10,
    errors: load > 3 ? 2 : 0,
    errorRate: load > 3 ? 2 / (200 + load * 10) : 0,
    achievedRps: rps,
    outputTokensPerSec: rps * 180,
    goodputRps: rps * 0.9,
    ttftMs: quant((40 + load * 12) * factor),
    itlMs: quant((8 + load * 0.8) * factor),
    e2eMs: quant((1500 + load * 200) * factor),
    valid,
    ...(valid ? {} : { invalidReason: INVALID_REASON }),
    repeats: 1,
    server: {
      prefixHitRate: 0.3 + 0.1 * factor,
      preemptions: Math.round(load * factor),
      kvUsageMean: 0.2 + load * 0.05,
      kvUsageMax: 0.4 + load * 0.05,
      queueDepthMean: load * 0.5 * factor,
      replicaShare: share,
      ...(withTs
        ? {
            timeseries: {
              tSec,
              replicas: Object.fromEntries(
                replicas.map((r, ri) => [
                  r,
                  {
                    kvUsage: tSec.map((t) => Math.min(1, 0.1 + ri * 0.1 + (t / 60) * 0.5)),
                    queueDepth: tSec.map((t) => Math.round((t % 10) * factor + ri)),
                  },
                ]),
              ),
            },
          }
        : {}),
    },
  };
}

function delta(
  metric: string,
  label: string,
  unit: string,
  betterWhen: "lower" | "higher",
  a: number,
  b: number,
): MetricDelta {
  const d = ((b - a) / a) * 100;
  const half = 4;
  const lo = d - half;
  const hi = d + half;
  let verdict: Verdict = "within noise";
  if (lo > 0) verdict = betterWhen === "higher" ? "better" : "worse";
  else if (hi < 0) verdict = betterWhen === "lower" ? "better" : "worse";
  return {
    metric,
    label,
    unit,
    betterWhen,
    a,
    b,
    deltaPct: d,
    ciLowPct: lo,
    ciHighPct: hi,
    verdict,
    method: "bootstrap over 210+210 requests",
  };
}

function row(
  model: string,
  kind: "concurrency" | "request-rate",
  value: number,
  opts: { invalidB?: boolean; ts?: boolean; factorB: number },
): ComparisonRow {
  const replicas = ["engine-0", "engine-1", "engine-2"];
  const a = side("baseline", value, 1, replicas, !!opts.ts);
  const b = side("managed", value, opts.factorB, replicas, !!opts.ts, !opts.invalidB);
  if (kind === "request-rate") {
    a.requestedRps = value;
    b.requestedRps = value;
  }
  const deltas: MetricDelta[] = [];
  for (const [name, key] of [
    ["ttft", "ttftMs"],
    ["itl", "itlMs"],
    ["e2e", "e2eMs"],
  ] as const) {
    for (const q of ["p50", "p90", "p99"] as const) {
      deltas.push(delta(`${name}_${q}_ms`, `${name} ${q}`, "ms", "lower", a[key]![q], b[key]![q]));
    }
  }
  deltas.push(
    delta(
      "request_throughput",
      "request throughput",
      "req/s",
      "higher",
      a.achievedRps,
      b.achievedRps,
    ),
  );
  deltas.push(delta("goodput", "goodput", "req/s", "higher", a.goodputRps!, b.goodputRps! * 1.2));
  deltas.push(delta("prefix_hit_rate", "prefix-cache hit rate", "%", "higher", 30, 45));
  return {
    model,
    point: kind === "concurrency" ? `concurrency ${value}` : `request rate ${value.toFixed(1)}/s`,
    pointValue: value,
    pointKind: kind,
    a,
    b,
    deltas,
  };
}

export function makeComparison(opts: { emulated: boolean; small?: boolean }): Comparison {
  const models = opts.small
    ? ["llama-3.1-8b", EVIL_MODEL]
    : ["llama-3.1-8b", "qwen3-8b", EVIL_MODEL];
  const rows: ComparisonRow[] = [];
  models.forEach((m, mi) => {
    for (const c of [1, 4, 16]) {
      rows.push(
        row(m, "concurrency", c, { factorB: c === 1 ? 1.01 : 0.7, ts: mi === 0 && c === 16 }),
      );
    }
    for (const r of [1, 2, 4]) {
      rows.push(
        row(m, "request-rate", r, {
          factorB: 0.8,
          invalidB: mi === models.length - 1 && r === 4,
          ts: mi === 0 && r === 4,
        }),
      );
    }
  });
  return {
    schemaVersion: 1,
    createdAt: "2025-01-01T00:00:00.000Z",
    sources: { a: "run-20250101-abc/baseline", b: "run-20250101-abc/managed" },
    labels: { a: "baseline", b: "managed" },
    emulated: opts.emulated,
    emulatedSides: { a: opts.emulated, b: opts.emulated },
    slo: { ttftMs: 500, itlMs: 50 },
    workload: "synthetic ISL 512 ± 64 / OSL 128 (ignore_eos), seed 7",
    rows,
    notes: ["managed does not win at concurrency 1", "note with <b>html</b> & | pipes"],
  };
}

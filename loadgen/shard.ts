/**
 * Distributed load: N load-generator processes (an indexed Job's pods) each take a disjoint shard
 * of one schedule, by request index modulo N, and start their measured phase at one common
 * instant. What each shard measured travels to shard 0 in a wire form (bigints as strings) and is
 * merged there into one export, as if one process had sent every request.
 *
 * Pure: which requests, slots and sessions a shard owns; the merge; the wire form.
 */
import type { RawRequest, RequestMetrics } from "../results/genai-perf/metrics.ts";
import type { MeasuredRequests, RequestRecord } from "./run-point.ts";

/** Shard `index` of `count` (0-based). */
export interface ShardOf {
  index: number;
  count: number;
}

/** A shard of a running point: which one it is, and how it learns the common start. */
export interface ShardSpec extends ShardOf {
  /**
   * Called once this shard's warm-up is done; resolves with the measured phase's common start
   * (epoch ns), when every shard is warm.
   */
  startAt: () => Promise<bigint>;
}

/** What one shard measured, ready to merge with the others'. */
export interface ShardOutcome {
  shard: number;
  measured: MeasuredRequests;
  /** The payload of each record (send order), for inputs.json of sessions and traces. */
  payloads: string[];
  startEpochNs: bigint;
  /** The whole schedule's rate (every shard draws all of it), open loop only. */
  targetRate?: number;
  aborted?: string;
}

/** Global request indices j < total owned by a shard: j ≡ index (mod count). */
export function ownsRequest(s: ShardOf, j: number): boolean {
  return j % s.count === s.index;
}

/** How many of `total` requests a shard sends (Infinity stays Infinity: a time-boxed point). */
export function shareOf(total: number, s: ShardOf): number {
  if (!Number.isFinite(total)) return total;
  return total > s.index ? Math.floor((total - 1 - s.index) / s.count) + 1 : 0;
}

/**
 * Closed-loop slots of a shard: the concurrency split as evenly as it goes, the first shards
 * taking one more. Every shard needs at least one slot (the plan refuses parallelism above a
 * point's concurrency).
 */
export function slotsOf(concurrency: number, s: ShardOf): number {
  return Math.floor(concurrency / s.count) + (s.index < concurrency % s.count ? 1 : 0);
}

/** The elements of a global sequence a shard owns, in order. */
export function ownedOf<T>(xs: readonly T[], s: ShardOf): T[] {
  return xs.filter((_, j) => ownsRequest(s, j));
}

/**
 * One point's shards merged as one process would have recorded them: records in send order and
 * re-indexed, raws with their metrics in send order, error kinds and usage summed. The earliest
 * start is the point's start (they share one), the first abort reason wins.
 */
export function mergeShards(parts: readonly ShardOutcome[]): Omit<ShardOutcome, "shard"> {
  if (parts.length === 0) throw new Error("mergeShards: no shard outcome");
  const recs = parts.flatMap((p) =>
    p.measured.records.map((r, i) => ({ r, payload: p.payloads[i] ?? "" })),
  );
  recs.sort((a, b) => (a.r.sent_ns < b.r.sent_ns ? -1 : a.r.sent_ns > b.r.sent_ns ? 1 : 0));
  const pairs = parts.flatMap((p) =>
    p.measured.raws.map((raw, i) => ({ raw, m: p.measured.metrics[i]! })),
  );
  pairs.sort((a, b) =>
    a.raw.timestamp < b.raw.timestamp ? -1 : a.raw.timestamp > b.raw.timestamp ? 1 : 0,
  );
  const errorsByKind: Record<string, number> = {};
  const usage = { requests: 0, prompt: 0, completion: 0 };
  for (const p of parts) {
    for (const [k, n] of Object.entries(p.measured.errorsByKind))
      errorsByKind[k] = (errorsByKind[k] ?? 0) + n;
    usage.requests += p.measured.usage.requests;
    usage.prompt += p.measured.usage.prompt;
    usage.completion += p.measured.usage.completion;
  }
  let start = parts[0]!.startEpochNs;
  for (const p of parts) if (p.startEpochNs < start) start = p.startEpochNs;
  const aborted = parts.find((p) => p.aborted !== undefined)?.aborted;
  const targetRate = parts.find((p) => p.targetRate !== undefined)?.targetRate;
  return {
    measured: {
      records: recs.map(({ r }, index) => ({ ...r, index })),
      raws: pairs.map((p) => p.raw),
      metrics: pairs.map((p) => p.m),
      errorsByKind,
      usage,
    },
    payloads: recs.map((x) => x.payload),
    startEpochNs: start,
    ...(targetRate !== undefined ? { targetRate } : {}),
    ...(aborted !== undefined ? { aborted } : {}),
  };
}

// ---- wire form: JSON has no bigint, so the epoch-ns fields travel as decimal strings ----

const REC_NS = ["intended_ns", "eligible_ns", "sent_ns", "end_ns"] as const;

export function shardToWire(o: ShardOutcome): unknown {
  const m = o.measured;
  return {
    ...o,
    startEpochNs: String(o.startEpochNs),
    measured: {
      ...m,
      raws: m.raws.map((r) => ({
        ...r,
        timestamp: String(r.timestamp),
        responseTimestamps: r.responseTimestamps.map(String),
      })),
      metrics: m.metrics.map((x) => ({ ...x, startNs: String(x.startNs), endNs: String(x.endNs) })),
      records: m.records.map((r) => {
        const w: Record<string, unknown> = { ...r };
        for (const k of REC_NS) w[k] = String(r[k]);
        return w;
      }),
    },
  };
}

const big = (v: unknown, what: string): bigint => {
  if (typeof v !== "string" || !/^-?\d+$/.test(v))
    throw new Error(`shard outcome: ${what} is not an integer string`);
  return BigInt(v);
};

/** The inverse of shardToWire; throws on a malformed outcome (the coordinator fails the step). */
export function shardFromWire(v: unknown): ShardOutcome {
  const o = v as Record<string, unknown> & { measured?: Record<string, unknown> };
  const m = o?.measured;
  if (!o || typeof o.shard !== "number" || !m || !Array.isArray(m.records))
    throw new Error("shard outcome: not an outcome (shard, measured.records expected)");
  const raws = (m.raws as Record<string, unknown>[]).map(
    (r): RawRequest => ({
      timestamp: big(r.timestamp, "raw timestamp"),
      payload: String(r.payload),
      responseTimestamps: (r.responseTimestamps as unknown[]).map((t) => big(t, "response time")),
      responses: (r.responses as unknown[]).map(String),
    }),
  );
  const metrics = (m.metrics as Record<string, unknown>[]).map(
    (x) =>
      ({
        ...x,
        startNs: big(x.startNs, "metric start"),
        endNs: big(x.endNs, "metric end"),
      }) as RequestMetrics,
  );
  const records = (m.records as Record<string, unknown>[]).map((r) => {
    const out = { ...r } as Record<string, unknown>;
    for (const k of REC_NS) out[k] = big(r[k], `record ${k}`);
    return out as unknown as RequestRecord;
  });
  return {
    shard: o.shard,
    measured: {
      raws,
      metrics,
      records,
      errorsByKind: (m.errorsByKind ?? {}) as Record<string, number>,
      usage: m.usage as MeasuredRequests["usage"],
    },
    payloads: (o.payloads as unknown[]).map(String),
    startEpochNs: big(o.startEpochNs, "start"),
    ...(typeof o.targetRate === "number" ? { targetRate: o.targetRate } : {}),
    ...(typeof o.aborted === "string" ? { aborted: o.aborted } : {}),
  };
}

/**
 * Server-side evidence next to client metrics: every engine's and the router's /metrics scraped
 * before and after a load point (counter deltas), and engine gauges sampled during it (KV usage,
 * queue depth per replica). Accepts vLLM V1 and V0 names.
 */
import {
  formatLabels,
  parsePrometheusText,
  type Sample,
  sumFirstPresent,
} from "../lib/prometheus.ts";
import type { ServerView } from "./compare-types.ts";

export const KV_USAGE = ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"];
export const WAITING = ["vllm:num_requests_waiting"];
export const RUNNING = ["vllm:num_requests_running"];
export const PREFIX_QUERIES = [
  "vllm:prefix_cache_queries_total",
  "vllm:gpu_prefix_cache_queries_total",
];
export const PREFIX_HITS = ["vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"];
export const PREEMPTIONS = ["vllm:num_preemptions_total"];

export interface Scrape {
  /** Raw exposition text per endpoint name (engine names and "router"); missing when unreachable. */
  texts: Record<string, string>;
  errors: Record<string, string>;
  atMs: number;
}

export interface GaugeSample {
  tSec: number;
  /** Per engine: KV usage 0-1, waiting and running requests. */
  engines: Record<string, { kvUsage?: number; waiting?: number; running?: number }>;
}

export interface PointServerMetrics {
  before: Scrape;
  after: Scrape;
  samples: GaugeSample[];
  /** Per endpoint: counter (and histogram count/sum) increases over the point, keyed `name{labels}`. */
  deltas?: Record<string, Record<string, number>>;
}

/** Counter increases between two scrapes, per endpoint (counters, histogram/summary series). */
export function counterDeltas(
  before: Scrape,
  after: Scrape,
): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const [endpoint, text] of Object.entries(after.texts)) {
    const prior = before.texts[endpoint];
    if (prior === undefined) continue;
    const a = parsePrometheusText(text);
    const key = (s: Sample) => `${s.name}${formatLabels(s.labels)}`;
    const baseline = new Map(parsePrometheusText(prior).samples.map((s) => [key(s), s.value]));
    const isCounter = (name: string) => {
      const family = [...a.types.entries()].find(([f]) => name === f || name.startsWith(`${f}_`));
      return family !== undefined && family[1] !== "gauge" && family[1] !== "untyped";
    };
    const deltas: Record<string, number> = {};
    for (const s of a.samples) {
      if (!isCounter(s.name) || s.name.endsWith("_created")) continue;
      const d = s.value - (baseline.get(key(s)) ?? 0);
      if (d !== 0) deltas[key(s)] = d;
    }
    out[endpoint] = deltas;
  }
  return out;
}

export async function scrape(endpoints: Record<string, string>, timeoutMs = 2000): Promise<Scrape> {
  const texts: Record<string, string> = {};
  const errors: Record<string, string> = {};
  await Promise.all(
    Object.entries(endpoints).map(async ([name, base]) => {
      try {
        const r = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
        const text = await r.text();
        if (r.status === 200) texts[name] = text;
        else errors[name] = `HTTP ${r.status}`;
      } catch (err) {
        errors[name] = (err as Error).message;
      }
    }),
  );
  return { texts, errors, atMs: Date.now() };
}

export function gaugesOf(samples: readonly Sample[]): GaugeSample["engines"][string] {
  const out: GaugeSample["engines"][string] = {};
  const kv = sumFirstPresent(samples, KV_USAGE);
  const waiting = sumFirstPresent(samples, WAITING);
  const running = sumFirstPresent(samples, RUNNING);
  if (kv !== undefined) out.kvUsage = kv;
  if (waiting !== undefined) out.waiting = waiting;
  if (running !== undefined) out.running = running;
  return out;
}

/** Samples engine gauges every `intervalMs` until stopped. */
export function startGaugeSampler(
  engines: Record<string, string>,
  intervalMs = 250,
): { stop(): Promise<GaugeSample[]> } {
  const samples: GaugeSample[] = [];
  const t0 = performance.now();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const s = await scrape(engines, Math.max(200, intervalMs * 2));
      const row: GaugeSample = { tSec: (performance.now() - t0) / 1000, engines: {} };
      for (const [name, text] of Object.entries(s.texts)) {
        try {
          row.engines[name] = gaugesOf(parsePrometheusText(text).samples);
        } catch {
          // A half-written exposition is skipped; the next sample replaces it.
        }
      }
      samples.push(row);
      if (!stopped) await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return samples;
    },
  };
}

function counterDelta(
  m: PointServerMetrics,
  engine: string,
  names: readonly string[],
): number | undefined {
  const before = m.before.texts[engine];
  const after = m.after.texts[engine];
  if (before === undefined || after === undefined) return undefined;
  const a = sumFirstPresent(parsePrometheusText(before).samples, names);
  const b = sumFirstPresent(parsePrometheusText(after).samples, names);
  return a === undefined || b === undefined ? undefined : b - a;
}

/** The server view of one model's replicas over a load point. */
export function serverView(
  m: PointServerMetrics,
  engines: readonly string[],
): Omit<ServerView, "replicaShare"> {
  const view: Omit<ServerView, "replicaShare"> = {};
  let hits = 0;
  let queries = 0;
  let preemptions = 0;
  let havePrefix = false;
  let havePreempt = false;
  for (const e of engines) {
    const q = counterDelta(m, e, PREFIX_QUERIES);
    const h = counterDelta(m, e, PREFIX_HITS);
    if (q !== undefined && h !== undefined) {
      havePrefix = true;
      queries += q;
      hits += h;
    }
    const p = counterDelta(m, e, PREEMPTIONS);
    if (p !== undefined) {
      havePreempt = true;
      preemptions += p;
    }
  }
  if (havePrefix && queries > 0) view.prefixHitRate = hits / queries;
  if (havePreempt) view.preemptions = preemptions;
  const kv: number[] = [];
  const queue: number[] = [];
  const replicas: NonNullable<ServerView["timeseries"]>["replicas"] = {};
  for (const e of engines) replicas[e] = { kvUsage: [], queueDepth: [] };
  for (const s of m.samples) {
    for (const e of engines) {
      const g = s.engines[e];
      replicas[e]!.kvUsage.push(g?.kvUsage ?? Number.NaN);
      replicas[e]!.queueDepth.push(g?.waiting ?? Number.NaN);
      if (g?.kvUsage !== undefined) kv.push(g.kvUsage);
      if (g?.waiting !== undefined) queue.push(g.waiting);
    }
  }
  if (kv.length > 0) {
    view.kvUsageMean = kv.reduce((t, x) => t + x, 0) / kv.length;
    view.kvUsageMax = Math.max(...kv);
  }
  if (queue.length > 0) view.queueDepthMean = queue.reduce((t, x) => t + x, 0) / queue.length;
  if (m.samples.length > 0) view.timeseries = { tSec: m.samples.map((s) => s.tSec), replicas };
  return view;
}

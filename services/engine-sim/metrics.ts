/**
 * /metrics in vLLM's names (V1 by default, V0 on request) plus the emulator's own timing-honesty
 * metrics. Labels: model_name and engine.
 */
import { formatPrometheusText, type MetricFamily } from "../../lib/prometheus.ts";
import { type EngineCore, Histogram } from "./core.ts";
import { BLOCK_SIZE } from "./kv.ts";

export const LAG_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1];

/** Step-timing lag (actual − scheduled start) of one engine's step loop. */
export class LagStats {
  readonly hist = new Histogram(LAG_BUCKETS);
  max = 0;
  /** Recent samples (ring) for percentiles in benchmarks. */
  readonly ring = new Float64Array(8192);
  n = 0;
  observe(lag: number): void {
    const v = Math.max(0, lag);
    this.hist.observe(v);
    if (v > this.max) this.max = v;
    this.ring[this.n % this.ring.length] = v;
    this.n++;
  }
  samples(): number[] {
    const len = Math.min(this.n, this.ring.length);
    return Array.from(this.ring.subarray(0, len));
  }
  resetWindow(): void {
    this.n = 0;
    this.max = 0;
  }
}

export interface MetricsContext {
  model: string;
  engine: string;
  core: EngineCore;
  lag: LagStats;
  v0: boolean;
  /** Requests refused by fault injection, by status. */
  injectedErrors: Record<string, number>;
}

function histogramSamples(h: Histogram, labels: Record<string, string>, base: string) {
  const out: MetricFamily["samples"] = [];
  let cum = 0;
  for (let i = 0; i < h.buckets.length; i++) {
    cum += h.counts[i]!;
    out.push({
      name: `${base}_bucket`,
      labels: { ...labels, le: String(h.buckets[i]) },
      value: cum,
    });
  }
  out.push({ name: `${base}_bucket`, labels: { ...labels, le: "+Inf" }, value: h.count });
  out.push({ name: `${base}_sum`, labels, value: h.sum });
  out.push({ name: `${base}_count`, labels, value: h.count });
  return out;
}

export function renderMetrics(ctx: MetricsContext): string {
  const { core, v0 } = ctx;
  const c = core.counters;
  const L = { model_name: ctx.model, engine: ctx.engine };
  const fam: MetricFamily[] = [];
  const gauge = (name: string, help: string, value: number) =>
    fam.push({ name, help, type: "gauge", samples: [{ labels: L, value }] });
  const counter = (name: string, help: string, value: number) =>
    fam.push({ name, help, type: "counter", samples: [{ labels: L, value }] });
  const hist = (name: string, help: string, h: Histogram) =>
    fam.push({ name, help, type: "histogram", samples: histogramSamples(h, L, name) });

  gauge(
    "vllm:num_requests_running",
    "Number of requests in model execution batches.",
    core.numRunning,
  );
  gauge(
    "vllm:num_requests_waiting",
    "Number of requests waiting to be processed.",
    core.numWaiting,
  );
  if (v0)
    gauge(
      "vllm:gpu_cache_usage_perc",
      "GPU KV-cache usage. 1 means 100 percent usage.",
      core.kvUsage,
    );
  else
    gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", core.kvUsage);
  counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.", c.promptTokens);
  counter(
    "vllm:generation_tokens_total",
    "Number of generation tokens processed.",
    c.generationTokens,
  );
  fam.push({
    name: "vllm:request_success_total",
    help: "Count of successfully processed requests.",
    type: "counter",
    samples: (["stop", "length", "abort"] as const).map((r) => ({
      labels: { ...L, finished_reason: r },
      value: c.success[r],
    })),
  });
  counter(
    "vllm:num_preemptions_total",
    "Cumulative number of preemption from the engine.",
    c.preemptions,
  );
  if (v0) {
    gauge(
      "vllm:gpu_prefix_cache_hit_rate",
      "GPU prefix cache block hit rate.",
      c.prefixQueries === 0 ? 0 : c.prefixHits / c.prefixQueries,
    );
  } else {
    counter(
      "vllm:prefix_cache_queries_total",
      "Prefix cache queries, in terms of number of queried tokens.",
      c.prefixQueries,
    );
    counter(
      "vllm:prefix_cache_hits_total",
      "Prefix cache hits, in terms of number of cached tokens.",
      c.prefixHits,
    );
  }
  hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", c.ttft);
  if (v0)
    hist(
      "vllm:time_per_output_token_seconds",
      "Histogram of time per output token in seconds.",
      c.itl,
    );
  else
    hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", c.itl);
  hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", c.e2e);
  hist(
    "vllm:request_queue_time_seconds",
    "Histogram of time spent in WAITING phase for request.",
    c.queue,
  );
  hist(
    "vllm:request_prefill_time_seconds",
    "Histogram of time spent in PREFILL phase for request.",
    c.prefill,
  );
  hist(
    "vllm:request_decode_time_seconds",
    "Histogram of time spent in DECODE phase for request.",
    c.decode,
  );
  fam.push({
    name: "vllm:cache_config_info",
    help: "Information of the LLMEngine CacheConfig",
    type: "gauge",
    samples: [
      {
        labels: {
          ...L,
          block_size: String(BLOCK_SIZE),
          num_gpu_blocks: String(core.kv.numBlocks),
          enable_prefix_caching: String(core.kv.cachingEnabled),
        },
        value: 1,
      },
    ],
  });
  hist(
    "inferbench_engine_sim_step_lag_seconds",
    "engine-sim: how late each step started versus its modelled time (CPU saturation shows here).",
    ctx.lag.hist,
  );
  gauge(
    "inferbench_engine_sim_step_lag_max_seconds",
    "engine-sim: largest step lag seen.",
    ctx.lag.max,
  );
  counter("inferbench_engine_sim_steps_total", "engine-sim: modelled forward steps.", c.steps);
  counter(
    "inferbench_engine_sim_busy_seconds_total",
    "engine-sim: modelled GPU busy time.",
    c.busyTime,
  );
  fam.push({
    name: "inferbench_engine_sim_injected_errors_total",
    help: "engine-sim: requests refused by fault injection.",
    type: "counter",
    samples: Object.entries(ctx.injectedErrors).map(([status, value]) => ({
      labels: { ...L, status },
      value,
    })),
  });
  return formatPrometheusText(fam);
}

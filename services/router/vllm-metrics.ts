/**
 * Replica load from a vLLM /metrics page. Accepts V1 and V0 names; a page that has none of the
 * queue gauges yields undefined (the caller counts it and treats the replica as unknown — never a
 * silent zero).
 */
import { parsePrometheusText, sumFirstPresent } from "../../lib/prometheus.ts";

export interface ReplicaLoad {
  running: number;
  waiting: number;
  /** KV-cache usage 0..1; undefined when the page has neither name. */
  kvUsage: number | undefined;
}

export const RUNNING_NAMES = ["vllm:num_requests_running", "vllm_num_requests_running"] as const;
export const WAITING_NAMES = ["vllm:num_requests_waiting", "vllm_num_requests_waiting"] as const;
/** V1 renamed gpu_cache_usage_perc → kv_cache_usage_perc; both are fractions 0..1. */
export const KV_NAMES = [
  "vllm:kv_cache_usage_perc",
  "vllm:gpu_cache_usage_perc",
  "vllm_kv_cache_usage_perc",
  "vllm_gpu_cache_usage_perc",
] as const;

export function parseVllmLoad(text: string): ReplicaLoad | undefined {
  const { samples } = parsePrometheusText(text);
  const running = sumFirstPresent(samples, RUNNING_NAMES);
  const waiting = sumFirstPresent(samples, WAITING_NAMES);
  if (running === undefined && waiting === undefined) return undefined;
  const kv = sumFirstPresent(samples, KV_NAMES);
  return {
    running: Number.isFinite(running) ? (running as number) : 0,
    waiting: Number.isFinite(waiting) ? (waiting as number) : 0,
    kvUsage: kv === undefined || !Number.isFinite(kv) ? undefined : Math.min(1, Math.max(0, kv)),
  };
}

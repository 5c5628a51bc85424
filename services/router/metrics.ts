/**
 * The router's Prometheus /metrics: one table row per per-replica family (name, help, type, how to
 * read the value off a replica), then the per-kind error counters, the client-facing outcomes and
 * the added-latency histogram.
 */
import { formatPrometheusText, type MetricFamily } from "../../lib/prometheus.ts";
import { metricsFresh, type Replica } from "./replica.ts";
import type { Counter, Histogram } from "./stats.ts";

interface ReplicaMetric {
  name: string;
  help: string;
  type: MetricFamily["type"];
  value(r: Replica, now: number, staleMs: number): number;
}

export const REPLICA_METRICS: readonly ReplicaMetric[] = [
  {
    name: "inferbench_router_backend_in_flight",
    help: "Requests in flight to the replica.",
    type: "gauge",
    value: (r) => r.inFlight,
  },
  {
    name: "inferbench_router_backend_requests_total",
    help: "Requests dispatched to the replica (attempts).",
    type: "counter",
    value: (r) => r.requests,
  },
  {
    name: "inferbench_router_backend_picks_total",
    help: "Times the policy picked the replica.",
    type: "counter",
    value: (r) => r.picks,
  },
  {
    name: "inferbench_router_backend_retries_total",
    help: "Requests retried elsewhere after never reaching the replica.",
    type: "counter",
    value: (r) => r.retries,
  },
  {
    name: "inferbench_router_backend_ejections_total",
    help: "Times the replica was ejected.",
    type: "counter",
    value: (r) => r.ejections,
  },
  {
    name: "inferbench_router_backend_healthy",
    help: "1 when the replica is in rotation.",
    type: "gauge",
    value: (r) => (r.healthy ? 1 : 0),
  },
  {
    name: "inferbench_router_backend_metrics_fresh",
    help: "1 when the replica's polled load is fresh (else unknown).",
    type: "gauge",
    value: (r, now, staleMs) => (metricsFresh(r, now, staleMs) ? 1 : 0),
  },
];

export interface RouterMetricsSource {
  replicas: readonly Replica[];
  outcomes: Counter;
  added: Histogram;
  staleMs: number;
}

export function renderMetrics(src: RouterMetricsSource, now: number): string {
  const { replicas } = src;
  const labels = (r: Replica) => ({ backend: r.cfg.engine, model: r.model });
  const families: MetricFamily[] = REPLICA_METRICS.map((m) => ({
    name: m.name,
    help: m.help,
    type: m.type,
    samples: replicas.map((r) => ({ labels: labels(r), value: m.value(r, now, src.staleMs) })),
  }));
  const errorSamples: MetricFamily["samples"] = [];
  for (const r of replicas)
    for (const [kind, v] of r.errors.entries())
      errorSamples.push({ labels: { ...labels(r), kind }, value: v });
  families.push(
    {
      name: "inferbench_router_backend_errors_total",
      help: "Errors by kind (connect, connect_timeout, timeout, reset, stale_socket, stream_error, http_5xx, client_disconnect, poll_*, metrics_*).",
      type: "counter",
      samples: errorSamples,
    },
    {
      name: "inferbench_router_requests_total",
      help: "Client-facing outcomes.",
      type: "counter",
      samples: src.outcomes.entries().map(([outcome, v]) => ({ labels: { outcome }, value: v })),
    },
    src.added.family(
      "inferbench_router_added_latency_seconds",
      "Time the router adds: body received → upstream dispatch, plus upstream headers → client headers.",
    ),
  );
  return formatPrometheusText(families);
}

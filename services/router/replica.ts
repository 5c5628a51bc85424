/**
 * Per-replica state the router keeps (O(1) per request) and the per-model groups the policies
 * choose within. The poller writes health and load; the data path writes the request counters.
 */
import type { BackendConfig } from "./config.ts";
import { buildHashRing, type HashRing, type ReplicaView } from "./policies.ts";
import { PrefixIndex } from "./prefix.ts";
import { Counter } from "./stats.ts";
import { UpstreamPool, type UpstreamPoolOptions } from "./upstream.ts";
import type { ReplicaLoad } from "./vllm-metrics.ts";

/** Structurally a ReplicaView, so round-robin can read replicas without building a snapshot. */
export class Replica implements ReplicaView {
  readonly host: string;
  readonly port: number;
  healthy = true;
  metrics: ReplicaLoad | undefined;
  /** performance.now() of the last good /metrics page. */
  metricsAt = 0;
  dispatchedSincePoll = 0;
  completedSincePoll = 0;
  inFlight = 0;
  polling = false;
  warnedMissing = false;
  requests = 0;
  picks = 0;
  retries = 0;
  ejections = 0;
  /** Why the last poll failed (kept while ejected: /health says why nothing is healthy). */
  lastProblem: string | undefined;
  readonly errors = new Counter();
  readonly pool: UpstreamPool;
  constructor(
    readonly model: string,
    readonly index: number,
    readonly cfg: BackendConfig,
    poolOpts: UpstreamPoolOptions,
  ) {
    const u = new URL(cfg.url);
    this.host = u.hostname.replace(/^\[|\]$/g, "");
    this.port = Number(u.port);
    this.pool = new UpstreamPool(this.host, this.port, poolOpts);
  }
}

export interface ModelGroup {
  name: string;
  replicas: Replica[];
  rrCursor: number;
  ring: HashRing;
  prefix: PrefixIndex;
}

export function buildGroups(
  backends: Record<string, BackendConfig[]>,
  poolOpts: UpstreamPoolOptions,
): Map<string, ModelGroup> {
  const groups = new Map<string, ModelGroup>();
  for (const [model, list] of Object.entries(backends))
    groups.set(model, {
      name: model,
      replicas: list.map((b, i) => new Replica(model, i, b, poolOpts)),
      rrCursor: 0,
      ring: buildHashRing(list.map((b) => b.engine)),
      prefix: new PrefixIndex(),
    });
  return groups;
}

/** True while the replica's last polled load is recent enough to route on. */
export function metricsFresh(r: Replica, now: number, staleMs: number): boolean {
  return r.metrics !== undefined && now - r.metricsAt <= staleMs;
}

/**
 * The policies' snapshot of one model's replicas at `now`: stale metrics read as unknown, and
 * replica `excluded` (the one a retry just failed on; -1 for none) as unhealthy.
 */
export function snapshot(
  g: ModelGroup,
  excluded: number,
  now: number,
  staleMs: number,
): ReplicaView[] {
  return g.replicas.map((r) => ({
    index: r.index,
    healthy: r.healthy && r.index !== excluded,
    metrics: metricsFresh(r, now, staleMs) ? r.metrics : undefined,
    dispatchedSincePoll: r.dispatchedSincePoll,
    completedSincePoll: r.completedSincePoll,
    inFlight: r.inFlight,
  }));
}

/** Takes a replica out of rotation (the poller probes /health until it answers 200). */
export function ejectReplica(r: Replica, why: string, warn: (msg: string) => void): void {
  r.lastProblem = why;
  if (!r.healthy) return;
  r.healthy = false;
  r.ejections++;
  r.metrics = undefined;
  warn(`ejected ${r.cfg.engine} (${r.model}): ${why}`);
}

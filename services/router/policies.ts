/**
 * Replica-choice policies: pure functions over a snapshot of one model's replicas. The server
 * builds the snapshot from O(1) per-replica state; nothing here does I/O or reads the clock.
 *
 * Load of a replica = running + waiting from its last fresh vLLM /metrics poll, plus the router's
 * own change in outstanding requests since that poll began: dispatched since, minus completed since
 * (so one poll interval does not send a burst to the same replica, and a replica that has just
 * finished work is seen as free before the next poll).
 *
 * Unknown replicas (no metrics, or metrics older than metricsStaleMs) are NOT treated as idle:
 * - when some replicas of the model are known, an unknown one is scored as
 *   max(mean load of the known ones, the router's own in-flight count to it) — it can win only
 *   when the known replicas are busier than average, and never attracts a whole burst;
 * - when none is known, every replica is scored by the router's own in-flight count (least
 *   connections), which is a real signal rather than a silent fallback to random.
 */

export type Rng = () => number;

export interface ReplicaView {
  /** Position in the model's replica list (stable; used by the prefix index bitmasks). */
  index: number;
  /** False while ejected after connect errors / timeouts / failed health checks. */
  healthy: boolean;
  /** Last fresh poll, undefined when unknown (never polled, failed, or stale). */
  metrics: { running: number; waiting: number; kvUsage: number | undefined } | undefined;
  /** Requests dispatched by this router since the last successful poll began. */
  dispatchedSincePoll: number;
  /** Requests of this router to the replica that ended since that poll began (default 0). */
  completedSincePoll?: number;
  /** Requests this router has in flight to the replica right now. */
  inFlight: number;
}

export interface PolicyOptions {
  loadGateThreshold: number;
  kvAwareWeights: { queue: number; kvUsage: number; prefix: number };
}

/** Load per replica (same order as `replicas`), with the unknown-replica rule above. */
export function effectiveLoads(replicas: readonly ReplicaView[]): number[] {
  let knownSum = 0;
  let knownCount = 0;
  const loads = new Array<number>(replicas.length);
  for (let i = 0; i < replicas.length; i++) {
    const r = replicas[i]!;
    if (r.metrics) {
      const l = Math.max(
        0,
        r.metrics.running + r.metrics.waiting + r.dispatchedSincePoll - (r.completedSincePoll ?? 0),
      );
      loads[i] = l;
      knownSum += l;
      knownCount++;
    } else loads[i] = Number.NaN;
  }
  const mean = knownCount > 0 ? knownSum / knownCount : 0;
  for (let i = 0; i < replicas.length; i++) {
    if (Number.isNaN(loads[i]!)) {
      const r = replicas[i]!;
      loads[i] = knownCount > 0 ? Math.max(mean, r.inFlight) : r.inFlight;
    }
  }
  return loads;
}

/**
 * Round-robin over healthy replicas; `cursor` is the per-model counter. Returns the position in
 * `replicas` (or -1 when none is healthy) and the next cursor.
 */
export function pickRoundRobin(
  replicas: readonly ReplicaView[],
  cursor: number,
): { pick: number; cursor: number } {
  const n = replicas.length;
  for (let k = 0; k < n; k++) {
    const i = (cursor + k) % n;
    if (replicas[i]!.healthy) return { pick: i, cursor: (i + 1) % n };
  }
  return { pick: -1, cursor };
}

/** Least-busy: random choice among healthy replicas whose load is within +1 of the minimum. */
export function pickLeastBusy(
  replicas: readonly ReplicaView[],
  rng: Rng,
  loads: readonly number[] = effectiveLoads(replicas),
): number {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < replicas.length; i++)
    if (replicas[i]!.healthy && loads[i]! < min) min = loads[i]!;
  if (min === Number.POSITIVE_INFINITY) return -1;
  const near: number[] = [];
  for (let i = 0; i < replicas.length; i++)
    if (replicas[i]!.healthy && loads[i]! <= min + 1) near.push(i);
  return near[Math.min(near.length - 1, Math.floor(rng() * near.length))]!;
}

/**
 * Power of two choices: two distinct healthy replicas drawn uniformly at random, the less loaded
 * of the two wins (a tie goes to the first drawn). Reads two loads per request, so it needs no
 * global minimum, and a replica busier than every other is never chosen while two are healthy.
 */
export function pickPowerOfTwo(
  replicas: readonly ReplicaView[],
  rng: Rng,
  loads: readonly number[] = effectiveLoads(replicas),
): number {
  const healthy: number[] = [];
  for (let i = 0; i < replicas.length; i++) if (replicas[i]!.healthy) healthy.push(i);
  const n = healthy.length;
  if (n === 0) return -1;
  if (n === 1) return healthy[0]!;
  const a = Math.min(n - 1, Math.floor(rng() * n));
  let b = Math.min(n - 2, Math.floor(rng() * (n - 1)));
  if (b >= a) b++;
  const x = healthy[a]!;
  const y = healthy[b]!;
  return loads[y]! < loads[x]! ? y : x;
}

/** True when `affine`'s load exceeds the mean healthy load by more than `threshold`. */
export function overLoadGate(
  replicas: readonly ReplicaView[],
  loads: readonly number[],
  affine: number,
  threshold: number,
): boolean {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < replicas.length; i++)
    if (replicas[i]!.healthy) {
      sum += loads[i]!;
      n++;
    }
  if (n === 0) return false;
  return loads[affine]! > sum / n + threshold;
}

export type PickReason = "affinity" | "least-busy" | "no-affinity" | "load-gate" | "none";

/**
 * Affinity needs a real cache win: below this fraction of the prompt's blocks matched (e.g. only a
 * shared system prompt that every replica holds), prefix-aware routes by load instead — otherwise
 * the first replica to see a common prefix attracts every new conversation (SGLang's cache-aware
 * router uses the same 0.5 default).
 */
export const PREFIX_MIN_MATCH_RATIO = 0.5;

/**
 * Prefix-aware: the healthy replica with the longest matching prefix (`matchBlocks[i]` of
 * `totalBlocks` blocks), if it covers at least `minMatchRatio` of the prompt, gated by load;
 * otherwise, or over the gate, least-busy.
 */
export function pickPrefixAware(
  replicas: readonly ReplicaView[],
  matchBlocks: readonly number[],
  totalBlocks: number,
  opts: Pick<PolicyOptions, "loadGateThreshold"> & { minMatchRatio?: number },
  rng: Rng,
): { pick: number; reason: PickReason } {
  const loads = effectiveLoads(replicas);
  let best = -1;
  for (let i = 0; i < replicas.length; i++) {
    if (!replicas[i]!.healthy || (matchBlocks[i] ?? 0) === 0) continue;
    // Longest match wins; among equal matches the less loaded one.
    if (
      best < 0 ||
      matchBlocks[i]! > matchBlocks[best]! ||
      (matchBlocks[i] === matchBlocks[best] && loads[i]! < loads[best]!)
    )
      best = i;
  }
  const minRatio = opts.minMatchRatio ?? PREFIX_MIN_MATCH_RATIO;
  if (best < 0 || matchBlocks[best]! < minRatio * totalBlocks) {
    const pick = pickLeastBusy(replicas, rng, loads);
    return { pick, reason: pick < 0 ? "none" : "no-affinity" };
  }
  if (overLoadGate(replicas, loads, best, opts.loadGateThreshold))
    return { pick: pickLeastBusy(replicas, rng, loads), reason: "load-gate" };
  return { pick: best, reason: "affinity" };
}

/** Session affinity: the consistent-hash owner of the key (healthy only), gated by load. */
export function pickSession(
  replicas: readonly ReplicaView[],
  owner: number,
  opts: Pick<PolicyOptions, "loadGateThreshold">,
  rng: Rng,
): { pick: number; reason: PickReason } {
  const loads = effectiveLoads(replicas);
  if (owner < 0 || !replicas[owner]?.healthy) {
    const pick = pickLeastBusy(replicas, rng, loads);
    return { pick, reason: pick < 0 ? "none" : "no-affinity" };
  }
  if (overLoadGate(replicas, loads, owner, opts.loadGateThreshold))
    return { pick: pickLeastBusy(replicas, rng, loads), reason: "load-gate" };
  return { pick: owner, reason: "affinity" };
}

/**
 * kv-aware score (lower is better), like the Gateway API inference extension's scorer:
 *   queue·(load / max load) + kvUsage·(KV cache usage 0..1) − prefix·(matched / total blocks).
 * Unknown KV usage is scored as the mean of the known ones (0.5 when none is known).
 */
export function kvAwareScores(
  replicas: readonly ReplicaView[],
  matchBlocks: readonly number[],
  totalBlocks: number,
  weights: PolicyOptions["kvAwareWeights"],
): number[] {
  const loads = effectiveLoads(replicas);
  let maxLoad = 0;
  let kvSum = 0;
  let kvN = 0;
  for (let i = 0; i < replicas.length; i++) {
    if (!replicas[i]!.healthy) continue;
    if (loads[i]! > maxLoad) maxLoad = loads[i]!;
    const kv = replicas[i]!.metrics?.kvUsage;
    if (kv !== undefined) {
      kvSum += kv;
      kvN++;
    }
  }
  const kvMean = kvN > 0 ? kvSum / kvN : 0.5;
  return replicas.map((r, i) => {
    const q = maxLoad > 0 ? loads[i]! / maxLoad : 0;
    const kv = r.metrics?.kvUsage ?? kvMean;
    const p = totalBlocks > 0 ? (matchBlocks[i] ?? 0) / totalBlocks : 0;
    return weights.queue * q + weights.kvUsage * kv - weights.prefix * p;
  });
}

/** kv-aware: lowest score among healthy replicas; random tie-break among exact ties. */
export function pickKvAware(
  replicas: readonly ReplicaView[],
  matchBlocks: readonly number[],
  totalBlocks: number,
  weights: PolicyOptions["kvAwareWeights"],
  rng: Rng,
): number {
  const scores = kvAwareScores(replicas, matchBlocks, totalBlocks, weights);
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < replicas.length; i++)
    if (replicas[i]!.healthy && scores[i]! < min) min = scores[i]!;
  if (min === Number.POSITIVE_INFINITY) return -1;
  const ties: number[] = [];
  for (let i = 0; i < replicas.length; i++)
    if (replicas[i]!.healthy && scores[i]! <= min + 1e-9) ties.push(i);
  return ties[Math.min(ties.length - 1, Math.floor(rng() * ties.length))]!;
}

// ---- consistent hashing ----------------------------------------------------------------------

/** 32-bit FNV-1a of a string (UTF-16 code units); fast, stable across runs. */
export function fnv1a(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche (murmur3 fmix32) so that similar keys spread over the ring.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

export interface HashRing {
  points: Uint32Array;
  owners: Int32Array;
}

/** A ring with `vnodes` points per replica, keyed by replica id (stable across restarts). */
export function buildHashRing(replicaIds: readonly string[], vnodes = 64): HashRing {
  const pts: { p: number; o: number }[] = [];
  replicaIds.forEach((id, o) => {
    for (let v = 0; v < vnodes; v++) pts.push({ p: fnv1a(`${id}#${v}`), o });
  });
  pts.sort((a, b) => a.p - b.p || a.o - b.o);
  return {
    points: Uint32Array.from(pts, (x) => x.p),
    owners: Int32Array.from(pts, (x) => x.o),
  };
}

/**
 * Owner of `key`: the first ring point at or after its hash whose replica is usable, walking
 * clockwise — so removing a replica only moves the keys it owned. -1 when none is usable.
 */
export function ringOwner(
  ring: HashRing,
  key: string,
  usable: (index: number) => boolean = () => true,
): number {
  const n = ring.points.length;
  if (n === 0) return -1;
  const h = fnv1a(key);
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ring.points[mid]! < h) lo = mid + 1;
    else hi = mid;
  }
  for (let k = 0; k < n; k++) {
    const o = ring.owners[(lo + k) % n]!;
    if (usable(o)) return o;
  }
  return -1;
}

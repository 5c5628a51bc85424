/**
 * One routing decision: policy + a snapshot of the model's replicas + what the request carries →
 * the replica to send it to. Pure (no I/O, no clock; randomness only through `rng`), so every
 * policy's choice can be tested on hand-built snapshots.
 */
import type { RouterPolicy, RouterPolicyOptions } from "../../stacks/plan-types.ts";
import {
  type HashRing,
  pickKvAware,
  pickLeastBusy,
  pickPowerOfTwo,
  pickPrefixAware,
  pickRoundRobin,
  pickSession,
  type ReplicaView,
  type Rng,
  ringOwner,
} from "./policies.ts";

export interface ChoiceRequest {
  /** Session key (the session header, else the body's `user`); used by `session`. */
  sessionKey?: string | undefined;
  /** Leading prompt blocks each replica already holds (prefix-aware, kv-aware). */
  prefixMatch?: readonly number[] | undefined;
  /** Full prompt blocks of this request. */
  prefixBlocks?: number;
}

export interface ChoiceContext {
  policy: RouterPolicy;
  options: Pick<RouterPolicyOptions, "loadGateThreshold" | "kvAwareWeights">;
  /** The model's round-robin cursor before this choice. */
  rrCursor: number;
  /** The model's consistent-hash ring (session). */
  ring: HashRing;
  rng: Rng;
}

export interface Choice {
  /** Position in `replicas`, -1 when no replica is usable. */
  pick: number;
  /** The model's round-robin cursor after this choice (unchanged for other policies). */
  rrCursor: number;
}

export function chooseReplica(
  ctx: ChoiceContext,
  replicas: readonly ReplicaView[],
  req: ChoiceRequest,
): Choice {
  const { options, rng } = ctx;
  const gate = { loadGateThreshold: options.loadGateThreshold };
  const match = req.prefixMatch ?? [];
  const blocks = req.prefixBlocks ?? 0;
  let pick: number;
  switch (ctx.policy) {
    case "round-robin": {
      const rr = pickRoundRobin(replicas, ctx.rrCursor);
      return { pick: rr.pick, rrCursor: rr.cursor };
    }
    case "least-busy":
      pick = pickLeastBusy(replicas, rng);
      break;
    case "power-of-two":
      pick = pickPowerOfTwo(replicas, rng);
      break;
    case "prefix-aware":
      pick = pickPrefixAware(replicas, match, blocks, gate, rng).pick;
      break;
    case "kv-aware":
      pick = pickKvAware(replicas, match, blocks, options.kvAwareWeights, rng);
      break;
    case "session": {
      const key = req.sessionKey;
      const owner =
        key === undefined ? -1 : ringOwner(ctx.ring, key, (i) => replicas[i]?.healthy === true);
      pick = pickSession(replicas, owner, gate, rng).pick;
      break;
    }
  }
  return { pick, rrCursor: ctx.rrCursor };
}

/** Whether the policy reads polled load (else only /health is polled). */
export function policyReadsLoad(policy: RouterPolicy): boolean {
  return policy !== "round-robin";
}

/** Whether the policy routes on prompt prefixes (the body's prompt is hashed). */
export function policyUsesPrefix(policy: RouterPolicy): boolean {
  return policy === "prefix-aware" || policy === "kv-aware";
}

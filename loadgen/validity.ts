/**
 * Validity gate: a load point where the generator fell behind its own schedule, or did not reach
 * its target rate, is invalid (ARCHITECTURE.md honesty rules).
 */
import { percentile } from "../lib/percentile.ts";

export interface ValidityInput {
  /** Per-request schedule lag (actual send − eligible send), ns. */
  lagNs: readonly number[];
  /** Target arrival rate, req/s (open loop and trace replay); undefined for closed loop. */
  targetRate?: number;
  /** Send times (ns offsets) of the measured requests, in send order. */
  sendOffsetsNs: readonly number[];
  /** Closed loop: the number of slots (each slot sends its next request when the last one ends). */
  concurrency?: number;
}

export interface Validity {
  valid: boolean;
  reasons: string[];
  lagP99Ms: number;
  lagThresholdMs: number;
  targetRate?: number;
  achievedRate?: number;
}

export const LAG_FLOOR_MS = 2;
export const LAG_FRACTION_OF_GAP = 0.05;
export const MIN_RATE_FRACTION = 0.95;

/** Achieved send rate: (n − 1) gaps over the span of the sends. */
export function achievedRate(sendOffsetsNs: readonly number[]): number | undefined {
  if (sendOffsetsNs.length < 2) return undefined;
  let lo = sendOffsetsNs[0]!;
  let hi = lo;
  for (const t of sendOffsetsNs) {
    if (t < lo) lo = t;
    if (t > hi) hi = t;
  }
  return hi > lo ? ((sendOffsetsNs.length - 1) * 1e9) / (hi - lo) : undefined;
}

export function judgeValidity(v: ValidityInput): Validity {
  const lagP99Ms = v.lagNs.length > 0 ? percentile(v.lagNs, 99) / 1e6 : 0;
  // Open loop: the target's mean gap. Closed loop: the mean gap between one slot's sends
  // (slots × achieved gap), since a slot's lag delays only that slot's next request.
  const rate = v.targetRate ?? achievedRate(v.sendOffsetsNs);
  const gapMs = rate ? (1000 / rate) * (v.targetRate === undefined ? (v.concurrency ?? 1) : 1) : 0;
  const lagThresholdMs = Math.max(LAG_FLOOR_MS, LAG_FRACTION_OF_GAP * gapMs);
  const reasons: string[] = [];
  if (lagP99Ms > lagThresholdMs)
    reasons.push(
      `schedule lag p99 ${lagP99Ms.toFixed(3)} ms > ${lagThresholdMs.toFixed(3)} ms (generator fell behind)`,
    );
  const out: Validity = { valid: true, reasons, lagP99Ms, lagThresholdMs };
  if (v.targetRate !== undefined) {
    out.targetRate = v.targetRate;
    const a = achievedRate(v.sendOffsetsNs);
    if (a !== undefined) {
      out.achievedRate = a;
      if (a < MIN_RATE_FRACTION * v.targetRate)
        reasons.push(
          `achieved rate ${a.toFixed(2)} req/s < ${MIN_RATE_FRACTION * 100}% of target ${v.targetRate} req/s`,
        );
    }
  }
  out.valid = reasons.length === 0;
  return out;
}

/**
 * Replays each reference point a profile claims on the pure model (virtual clock) and compares.
 */
import { coreConfigFromProfile, EngineCore } from "./core.ts";
import { BLOCK_SIZE } from "./kv.ts";
import { type EngineProfile, type ReferencePoint, staticKvTokens } from "./profiles.ts";
import { mean, simulate, syntheticPrompt } from "./simulate.ts";

export interface CalibrationRow {
  point: ReferencePoint;
  emulated: number;
  ratio: number;
}

export function newCore(p: EngineProfile, prefixCaching = false): EngineCore {
  return new EngineCore(
    coreConfigFromProfile(p, {
      numBlocks: Math.floor(staticKvTokens(p) / BLOCK_SIZE),
      blockBytes: p.kvBytesPerToken * BLOCK_SIZE,
      prefixCaching,
    }),
  );
}

/** Emulated value of one reference point: closed loop, warm-up requests discarded. */
export function measurePoint(p: EngineProfile, pt: ReferencePoint): number {
  const core = newCore(p);
  const perClient = pt.metric === "prefill-tps" ? 4 : Math.max(6, Math.ceil(96 / pt.concurrency));
  const res = simulate([core], {
    clients: pt.concurrency,
    next: (client, seq) =>
      seq < perClient
        ? {
            engine: 0,
            promptTokens: syntheticPrompt(pt.inputTokens, client * 1000 + seq),
            outputLen: pt.outputTokens,
          }
        : undefined,
  });
  // Drop the first round (cold start: every client arrives at t = 0).
  const steady = res.records.filter((_, i) => i >= pt.concurrency);
  if (pt.metric === "itl") return mean(steady.map((r) => r.itl));
  if (pt.metric === "ttft") return mean(steady.map((r) => r.ttft));
  // Saturated throughput: prompt tokens finished between the end of warm-up and the last finish.
  const ends = res.records.map((r) => r.end).sort((a, b) => a - b);
  const k = pt.concurrency - 1;
  return ((ends.length - 1 - k) * pt.inputTokens) / (ends[ends.length - 1]! - ends[k]!);
}

export function calibrate(p: EngineProfile): CalibrationRow[] {
  return p.reference.map((point) => {
    const emulated = measurePoint(p, point);
    return { point, emulated, ratio: emulated / point.value };
  });
}

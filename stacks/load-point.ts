/** The one definition of a load point's label: the folder name of its results and its name in reports. */
import type { LoadPoint } from "./plan-types.ts";

export function loadPointLabel(lp: LoadPoint): string {
  return lp.kind === "concurrency"
    ? `concurrency${lp.concurrency}`
    : `request_rate${lp.requestRate}`;
}

/** A load point in words, for logs and summaries: `concurrency 8`, `request rate 4/s poisson`. */
export function loadPointText(lp: LoadPoint): string {
  return lp.kind === "concurrency"
    ? `concurrency ${lp.concurrency}`
    : `request rate ${lp.requestRate}/s ${lp.distribution}${lp.maxConcurrency ? ` (max concurrency ${lp.maxConcurrency})` : ""}`;
}

/**
 * The workload seed of one load point and repeat: the same on both arms, different between
 * points, so that no point runs on prefix caches warmed by the identical prompts of an earlier
 * one (a deterministic router would then look better for the wrong reason).
 */
export function pointSeed(seed: number, pointIndex: number, repeat: number): number {
  return seed + 1000 * pointIndex + repeat;
}

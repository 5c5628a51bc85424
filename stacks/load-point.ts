/** The one definition of a load point's label: the folder name of its results and its name in reports. */
import { createRng } from "../lib/random.ts";
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

/** The order load points run in (`workload.order`): as listed, by load, or shuffled by the seed. */
export type PointOrder = "listed" | "ascending" | "descending" | "shuffled";

/** A point's load: its concurrency or its request rate (compared within one kind only). */
export function loadValue(lp: LoadPoint): number {
  return lp.kind === "concurrency" ? lp.concurrency : lp.requestRate;
}

/**
 * The points in run order (pure). Sorting is stable, so equal loads keep their listed order;
 * `shuffled` is seeded (run.seed): the same for both arms and every run of the seed.
 */
export function orderLoadPoints<T extends LoadPoint>(
  points: readonly T[],
  order: PointOrder,
  seed: number,
): T[] {
  if (order === "ascending") return [...points].sort((a, b) => loadValue(a) - loadValue(b));
  if (order === "descending") return [...points].sort((a, b) => loadValue(b) - loadValue(a));
  if (order !== "shuffled") return [...points];
  return createRng(seed).shuffle([...points]);
}

/** Heaviest first, with more than one point: each point warms the caches the next ones use. */
export function isDescendingSweep(points: readonly LoadPoint[]): boolean {
  if (points.length < 2 || new Set(points.map((p) => p.kind)).size > 1) return false;
  return points.every((p, i) => i === 0 || loadValue(p) < loadValue(points[i - 1]!));
}

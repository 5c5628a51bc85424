/** The one definition of a load point's label: the folder name of its results and its name in reports. */
import type { LoadPoint } from "./plan-types.ts";

export function loadPointLabel(lp: LoadPoint): string {
  return lp.kind === "concurrency"
    ? `concurrency${lp.concurrency}`
    : `request_rate${lp.requestRate}`;
}

/**
 * A full garbage collection between warm-up and measurement, so that garbage from earlier load
 * points (or the warm-up) is not collected by a long pause inside the measured window.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

let gcFn: (() => void) | null | undefined;

/** Runs a full GC when possible (`--expose-gc`, or enabled at run time). Returns whether it ran. */
export function collectGarbage(): boolean {
  if (gcFn === undefined) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) gcFn = g;
    else {
      try {
        setFlagsFromString("--expose-gc");
        gcFn = runInNewContext("gc") as () => void;
      } catch {
        gcFn = null;
      }
    }
  }
  if (!gcFn) return false;
  gcFn();
  return true;
}

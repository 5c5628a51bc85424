/** Bounded waits: every promise engine-sim waits on settles, or fails naming what it waited for. */

export class DeadlineError extends Error {}

/**
 * `p`, or a DeadlineError after `ms`: "<what> did not finish within <s> s". `what` is computed
 * when the deadline passes, so it can say what was still pending then.
 */
export function within<T>(p: Promise<T>, ms: number, what: string | (() => string)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const label = typeof what === "string" ? what : what();
      reject(new DeadlineError(`${label} did not finish within ${ms / 1000} s`));
    }, ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

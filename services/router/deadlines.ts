/**
 * Coarse deadlines for many short-lived waits (request bodies): one interval sweeps the pending
 * set instead of a timer armed and cleared per request. A deadline fires between `ms` and
 * `ms` + one tick (a quarter of `ms`, 10..1000 ms) after it was added.
 */
import { performance } from "node:perf_hooks";

export interface Deadline {
  readonly at: number;
  readonly fire: () => void;
}

export class Deadlines {
  private readonly items = new Set<Deadline>();
  private readonly timer: NodeJS.Timeout;

  constructor(readonly ms: number) {
    const tick = Math.min(1000, Math.max(10, Math.floor(ms / 4)));
    this.timer = setInterval(() => this.sweep(performance.now()), tick);
    this.timer.unref();
  }

  add(fire: () => void): Deadline {
    const d = { at: performance.now() + this.ms, fire };
    this.items.add(d);
    return d;
  }

  delete(d: Deadline): void {
    this.items.delete(d);
  }

  get size(): number {
    return this.items.size;
  }

  /** Fires (and removes) every deadline due at `now`. */
  sweep(now: number): void {
    for (const d of this.items)
      if (d.at <= now) {
        this.items.delete(d);
        d.fire();
      }
  }

  stop(): void {
    clearInterval(this.timer);
    this.items.clear();
  }
}

/**
 * Coarse deadlines for many short-lived waits (request bodies): one interval sweeps the pending
 * ones instead of a timer armed and cleared per request. A deadline fires between `ms` and
 * `ms` + one tick (a quarter of `ms`, 10..1000 ms) after it was added.
 *
 * Every deadline has the same length, so the pending ones form a list in due order: add appends,
 * delete unlinks, the sweep pops from the head. No hashing (a Set of fresh objects cost ~1 µs a
 * request in the router's profile), no allocation beyond the entry itself.
 */
import { performance } from "node:perf_hooks";

export interface Deadline {
  /** performance.now() at which it is due. */
  readonly at: number;
  readonly fire: () => void;
}

interface Entry extends Deadline {
  prev: Entry | undefined;
  next: Entry | undefined;
  linked: boolean;
}

export class Deadlines {
  private head: Entry | undefined;
  private tail: Entry | undefined;
  private count = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(readonly ms: number) {
    const tick = Math.min(1000, Math.max(10, Math.floor(ms / 4)));
    this.timer = setInterval(() => this.sweep(performance.now()), tick);
    this.timer.unref();
  }

  add(fire: () => void): Deadline {
    const e: Entry = {
      at: performance.now() + this.ms,
      fire,
      prev: this.tail,
      next: undefined,
      linked: true,
    };
    if (this.tail) this.tail.next = e;
    else this.head = e;
    this.tail = e;
    this.count++;
    return e;
  }

  delete(d: Deadline): void {
    const e = d as Entry;
    if (!e.linked) return;
    e.linked = false;
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = undefined;
    e.next = undefined;
    this.count--;
  }

  get size(): number {
    return this.count;
  }

  /** Fires (and removes) every deadline due at `now`. */
  sweep(now: number): void {
    while (this.head && this.head.at <= now) {
      const e = this.head;
      this.delete(e);
      e.fire();
    }
  }

  stop(): void {
    clearInterval(this.timer);
    while (this.head) this.delete(this.head);
  }
}

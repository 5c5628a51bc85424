/**
 * Main-thread work that may wait a little (request parsing and tokenisation: ~0.5 ms per request
 * with a few hundred prompt tokens) runs in time slices, so a burst of arrivals — a whole batch
 * finishing in one step and its clients sending their next requests at once — cannot hold the
 * event loop for tens of milliseconds while step timers are due. Between slices the loop runs its
 * timers and I/O. One queue per process, shared by all engines it hosts (FIFO across them).
 */
export class SlicedQueue {
  private q: (() => void)[] = [];
  private head = 0;
  private scheduled = false;

  constructor(
    /** Stop starting new jobs in a slice after this long (ms); at least one job runs per slice. */
    readonly sliceMs: number,
    private readonly clock: () => number = () => performance.now(),
    private readonly defer: (fn: () => void) => void = (fn) => setImmediate(fn),
    /** True while timing-critical work is imminent (a step is due): start no job, yield. */
    private readonly holdoff: () => boolean = () => false,
  ) {}

  get length(): number {
    return this.q.length - this.head;
  }

  /** Jobs must not throw (wrap them); a throwing job is dropped and the queue continues. */
  push(job: () => void): void {
    this.q.push(job);
    if (!this.scheduled) {
      this.scheduled = true;
      this.defer(this.run);
    }
  }

  private readonly run = (): void => {
    const end = this.clock() + this.sliceMs;
    try {
      do {
        if (this.holdoff()) break;
        const job = this.q[this.head]!;
        this.q[this.head++] = noop;
        job();
      } while (this.head < this.q.length && this.clock() < end);
    } finally {
      if (this.head >= this.q.length) {
        this.q = [];
        this.head = 0;
        this.scheduled = false;
      } else {
        if (this.head > 1024) {
          this.q = this.q.slice(this.head);
          this.head = 0;
        }
        this.defer(this.run);
      }
    }
  };
}

const noop = (): void => {};

/**
 * Drives one EngineCore in real time: each step's tokens are delivered when its modelled duration
 * has passed on the monotonic clock. The lag between the modelled and the actual start of each
 * step is recorded (metric) and warned about, so a saturated CPU never slows the model silently.
 */
import type { Logger } from "../../lib/logger.ts";
import type { EngineCore, StepResult } from "./core.ts";
import type { LagStats } from "./metrics.ts";

export const monotonicSeconds = (): number => performance.now() / 1000;

/** Beyond this lag the loop resynchronises to the wall clock instead of bursting to catch up. */
const RESYNC_LAG = 0.02;
const WARN_EVERY = 10;

export interface StepLoopOptions {
  now?: () => number;
  lag: LagStats;
  log: Logger;
  /** Warn when a step starts this much later than modelled (seconds). */
  warnLagSec?: number;
  onStep: (r: StepResult) => void;
}

/** Loops on the real monotonic clock with a wake armed: admission work yields to them. */
const armed = new Set<StepLoop>();

/**
 * Whether some engine of this process has a step due within `seconds` (or overdue by less than
 * 5 ms: its timer is about to run). Request admission checks it before each job so parsing and
 * tokenising do not sit on a step boundary.
 */
export function stepDueWithin(seconds: number): boolean {
  const now = monotonicSeconds();
  for (const l of armed) {
    const d = l.dueAt;
    if (d !== undefined && d - now < seconds && now - d < 0.005) return true;
  }
  return false;
}

export class StepLoop {
  /** When the armed wake is due (monotonic seconds); undefined when not armed. */
  dueAt: number | undefined;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private inFlight: StepResult | undefined;
  /** True when work is waiting but memory (a KVCached neighbour) blocks it. */
  blocked = false;
  private stalledUntil = 0;
  private closed = false;
  private lastWarn = Number.NEGATIVE_INFINITY;
  neighbours: StepLoop[] = [];
  private readonly now: () => number;

  constructor(
    readonly core: EngineCore,
    private readonly opts: StepLoopOptions,
  ) {
    this.now = opts.now ?? monotonicSeconds;
  }

  /** New work arrived (or memory may have freed): start stepping if idle. */
  kick(): void {
    if (this.closed || this.timer !== undefined || this.inFlight) return;
    this.blocked = false;
    const t = this.now();
    this.arm(Math.max(t, this.stalledUntil), false);
  }

  /** Freeze the engine (fault injection): no step starts before now + seconds. */
  stall(seconds: number): void {
    this.stalledUntil = Math.max(this.stalledUntil, this.now() + seconds);
  }

  close(): void {
    this.closed = true;
    this.clear();
  }

  private clear(): void {
    this.dueAt = undefined;
    armed.delete(this);
    if (this.timer === undefined) return;
    clearTimeout(this.timer as NodeJS.Timeout);
    clearImmediate(this.timer as NodeJS.Immediate);
    this.timer = undefined;
  }

  /** Fire at `at` (monotonic seconds); lag is only measured for modelled step boundaries. */
  private arm(at: number, measured: boolean): void {
    const wait = at - this.now();
    if (this.now === monotonicSeconds) {
      this.dueAt = at;
      armed.add(this);
    }
    const fire = () => {
      this.timer = undefined;
      // setTimeout has 1 ms granularity: finish short waits by yielding to I/O, not sleeping.
      if (this.now() < at - 0.0002) {
        this.timer = setImmediate(fire);
        return;
      }
      this.dueAt = undefined;
      armed.delete(this);
      this.fire(at, measured);
    };
    this.timer = wait >= 0.001 ? setTimeout(fire, Math.floor(wait * 1000)) : setImmediate(fire);
  }

  private fire(scheduled: number, measured: boolean): void {
    if (this.closed) return;
    const actual = this.now();
    const lag = actual - scheduled;
    let t = scheduled;
    if (measured) {
      this.opts.lag.observe(lag);
      if (lag > (this.opts.warnLagSec ?? 0.05) && actual - this.lastWarn > WARN_EVERY) {
        this.lastWarn = actual;
        this.opts.log.warn(
          `step started ${(lag * 1000).toFixed(1)} ms late: the CPU cannot keep the modelled timing (see inferbench_engine_sim_step_lag_seconds)`,
        );
      }
    }
    if (lag > RESYNC_LAG) t = actual;
    const done = this.inFlight;
    this.inFlight = undefined;
    if (done) {
      this.opts.onStep(done);
      // Freed blocks may unblock engines sharing this GPU's page pool.
      for (const n of this.neighbours) if (n.blocked) n.kick();
    }
    this.next(t);
  }

  private next(t: number): void {
    if (this.closed) return;
    if (t < this.stalledUntil) {
      this.arm(this.stalledUntil, false);
      return;
    }
    const wake = this.core.nextWake(t);
    if (wake === undefined) return; // idle
    if (wake > t) {
      this.arm(wake, false);
      return;
    }
    const r = this.core.step(t);
    if (!r) {
      this.blocked = true;
      return;
    }
    this.inFlight = r;
    this.arm(r.end, true);
  }
}

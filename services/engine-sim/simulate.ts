/**
 * Discrete-event simulation of clients against one or more EngineCores on a virtual clock: the
 * same model the servers run, without timers. Used by the calibration test and bench, and by the
 * model-property tests (deterministic and fast).
 */
import type { CoreRequest, EngineCore } from "./core.ts";

export interface SimRequest {
  engine: number;
  promptTokens: readonly number[];
  outputLen: number;
  finishReason?: "stop" | "length";
}

export interface SimRecord {
  engine: number;
  client: number;
  arrival: number;
  firstToken: number;
  end: number;
  outputLen: number;
  ttft: number;
  /** Mean inter-token latency of this request ((end − first) / (n − 1)); NaN when n = 1. */
  itl: number;
}

export interface SimOptions {
  /** Closed loop: `clients` users each send their next request when the previous one ends. */
  clients?: number;
  next?: (client: number, seq: number, now: number) => SimRequest | undefined;
  /** Open loop: requests at fixed times (sorted by time). */
  arrivals?: { time: number; request: SimRequest }[];
  /** Stop after this much simulated time. */
  until?: number;
  /** Hook after each step (e.g. sample gauges). */
  onStep?: (engine: number, now: number) => void;
}

export interface SimResult {
  records: SimRecord[];
  now: number;
  preemptions: number[];
}

interface Track {
  client: number;
  engine: number;
  arrival: number;
  first?: number;
  outputLen: number;
}

export function simulate(cores: readonly EngineCore[], opts: SimOptions): SimResult {
  const inflight = new Map<string, Track>();
  const records: SimRecord[] = [];
  const stepEnd: (number | undefined)[] = cores.map(() => undefined);
  const pendingEvents: ReturnType<EngineCore["step"]>[] = cores.map(() => undefined);
  const blocked: boolean[] = cores.map(() => false);
  const until = opts.until ?? Number.POSITIVE_INFINITY;
  const arrivals = opts.arrivals ?? [];
  let ai = 0;
  let idSeq = 0;
  let now = 0;
  const seqOf = new Map<number, number>();

  const submit = (client: number, r: SimRequest, t: number) => {
    const id = `r${idSeq++}`;
    const req: CoreRequest = {
      id,
      promptTokens: r.promptTokens,
      outputLen: r.outputLen,
      finishReason: r.finishReason ?? "length",
      arrival: t,
    };
    cores[r.engine]!.addRequest(req);
    blocked[r.engine] = false;
    inflight.set(id, { client, engine: r.engine, arrival: t, outputLen: r.outputLen });
  };
  const nextFor = (client: number, t: number) => {
    if (!opts.next) return;
    const s = seqOf.get(client) ?? 0;
    seqOf.set(client, s + 1);
    const r = opts.next(client, s, t);
    if (r) submit(client, r, t);
  };
  for (let c = 0; c < (opts.clients ?? 0); c++) nextFor(c, 0);

  for (;;) {
    // Earliest next action: a step end, an idle engine's wake-up, or an open-loop arrival.
    let best = Number.POSITIVE_INFINITY;
    let kind: "end" | "wake" | "arrival" | undefined;
    let which = -1;
    for (let e = 0; e < cores.length; e++) {
      const end = stepEnd[e];
      if (end !== undefined) {
        if (end < best) [best, kind, which] = [end, "end", e];
      } else if (!blocked[e]) {
        const w = cores[e]!.nextWake(now);
        if (w !== undefined && w < best) [best, kind, which] = [w, "wake", e];
      }
    }
    const arr = arrivals[ai];
    if (arr && arr.time < best) [best, kind, which] = [arr.time, "arrival", -1];
    if (kind === undefined || best > until) break;
    now = Math.max(now, best);

    if (kind === "arrival") {
      submit(-1, arr!.request, arr!.time);
      ai++;
      continue;
    }
    if (kind === "end") {
      const r = pendingEvents[which]!;
      stepEnd[which] = undefined;
      pendingEvents[which] = undefined;
      for (const ev of r.events) {
        const t = inflight.get(ev.id);
        if (!t) continue;
        if (t.first === undefined) t.first = now;
        if (ev.finish) {
          inflight.delete(ev.id);
          records.push({
            engine: t.engine,
            client: t.client,
            arrival: t.arrival,
            firstToken: t.first,
            end: now,
            outputLen: t.outputLen,
            ttft: t.first - t.arrival,
            itl: t.outputLen > 1 ? (now - t.first) / (t.outputLen - 1) : Number.NaN,
          });
          if (t.client >= 0) nextFor(t.client, now);
        }
      }
      // Memory may have been freed: engines blocked on a shared pool retry.
      for (let e = 0; e < cores.length; e++) blocked[e] = false;
      opts.onStep?.(which, now);
      continue;
    }
    const r = cores[which]!.step(now);
    if (!r) {
      blocked[which] = true;
      continue;
    }
    pendingEvents[which] = r;
    stepEnd[which] = r.end;
  }
  return { records, now, preemptions: cores.map((c) => c.counters.preemptions) };
}

/** Distinct pseudo-random prompt token ids (no accidental prefix sharing between prompts). */
export function syntheticPrompt(len: number, salt: number): number[] {
  const out = new Array<number>(len);
  let h = (salt * 2654435761) >>> 0;
  for (let i = 0; i < len; i++) {
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
    h = (h + 0x6d2b79f5) >>> 0;
    out[i] = 1000 + (h % 100000);
  }
  return out;
}

export function mean(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length === 0 ? Number.NaN : v.reduce((a, b) => a + b, 0) / v.length;
}

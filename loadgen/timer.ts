/**
 * Sub-millisecond wake-ups without spinning the event loop. libuv timers have 1 ms granularity,
 * and spinning on setImmediate for the last millisecond burns a core and allocates per turn (GC
 * pauses then show up as schedule lag). Instead one worker thread sleeps with Atomics.wait (which
 * takes fractional milliseconds) and posts a message at each due time; the message wakes the main
 * loop immediately. Deadlines are monotonic ns (loadgen/client.ts monoNs).
 */
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import { HR0_STRING, monoNs } from "./client.ts";

const WORKER_SOURCE = `(function main() {
const { receiveMessageOnPort, workerData } = require("node:worker_threads");
const port = workerData.port;
const sab = new Int32Array(workerData.sab);
const HR0 = BigInt(workerData.hr0);
const now = () => Number(process.hrtime.bigint() - HR0);
const queue = [];
for (;;) {
  const seen = Atomics.load(sab, 0);
  let m;
  while ((m = receiveMessageOnPort(port))) {
    if (m.message === "stop") return;
    queue.push(m.message);
  }
  if (queue.length > 1) queue.sort((a, b) => a.t - b.t);
  let t = now();
  while (queue.length > 0 && queue[0].t <= t) {
    port.postMessage(queue.shift().id);
    t = now();
  }
  Atomics.wait(sab, 0, seen, queue.length > 0 ? (queue[0].t - t) / 1e6 : 1000);
}
})();
`;

class PreciseTimer {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly sab = new Int32Array(new SharedArrayBuffer(4));
  private readonly pending = new Map<number, { resolve: () => void; t: number }>();
  private nextId = 0;
  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { port: port2, sab: this.sab.buffer, hr0: HR0_STRING },
      transferList: [port2],
    });
    this.worker.unref();
    this.worker.on("error", () => {
      // Fall back to coarse timers for whatever was waiting; later waits spin instead.
      broken = true;
      for (const { resolve, t } of this.pending.values())
        setTimeout(resolve, Math.max(0, (t - monoNs()) / 1e6));
      this.pending.clear();
      this.port.unref();
    });
    this.port.on("message", (id: number) => {
      const done = this.pending.get(id);
      this.pending.delete(id);
      if (this.pending.size === 0) this.port.unref();
      done?.resolve();
    });
    this.port.unref();
  }
  wait(targetNs: number): Promise<void> {
    return new Promise((resolve) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, t: targetNs });
      this.port.ref();
      this.port.postMessage({ id, t: targetNs });
      Atomics.add(this.sab, 0, 1);
      Atomics.notify(this.sab, 0);
    });
  }
}

let shared: PreciseTimer | undefined;
let broken = false;

/** Resolves at (or within ~0.1 ms after) the monotonic deadline; undefined if unavailable. */
export function preciseWait(targetNs: number): Promise<void> | undefined {
  if (broken) return undefined;
  try {
    shared ??= new PreciseTimer();
  } catch {
    broken = true;
    return undefined;
  }
  if (targetNs - monoNs() <= 0) return Promise.resolve();
  return shared.wait(targetNs);
}

/** Starts the timer thread ahead of a schedule (thread start-up takes ~20 ms). */
export async function warmPreciseTimer(): Promise<void> {
  await preciseWait(monoNs() + 1_000_000);
}

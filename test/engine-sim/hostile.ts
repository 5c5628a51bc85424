/**
 * Hostile requests against an engine-sim process and a concurrent probe: a normal streaming
 * request whose inter-chunk gaps (and short requests' TTFT) show how long the engine stopped
 * serving others. Used by isolation.test.ts; runnable on its own for before/after figures:
 *   node --import tsx test/engine-sim/hostile.ts
 */
import http from "node:http";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { readyPort, runEngineSim } from "./process.ts";

export interface Hostile {
  name: string;
  /** Sends the request; resolves with the status once answered (or the connection ends). */
  send(port: number): Promise<number>;
}

function postBuffer(port: number, path: string, body: Buffer, chunked = false): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({
      host: "127.0.0.1",
      port,
      path,
      method: "POST",
      agent: false,
      headers: {
        "content-type": "application/json",
        ...(chunked ? {} : { "content-length": body.length }),
      },
    });
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode!));
      res.on("error", () => resolve(res.statusCode!));
    });
    req.on("error", () => resolve(0));
    // Bounded: no answer within 30 s counts as status 0.
    req.setTimeout(30_000, () => req.destroy());
    if (chunked) {
      for (let i = 0; i < body.length; i += 65_536) req.write(body.subarray(i, i + 65_536));
      req.end();
    } else req.end(body);
  });
}

function pseudoRandomText(n: number): string {
  const al = "abcdefghijklmnopqrstuvwxyz0123456789 ,.!?";
  let x = 1;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out.push(al[x % al.length]!);
  }
  return out.join("");
}

/** The hostile set, bodies built up front so sending costs the client no CPU. */
export function hostileRequests(model: string): Hostile[] {
  const json = (o: object) => Buffer.from(JSON.stringify(o));
  const big = json({ model, prompt: "lorem ipsum ".repeat(1_250_000), max_tokens: 10 }); // 15 MB
  const runOfA = json({ model, messages: [{ role: "user", content: "a".repeat(1_000_000) }] });
  const random = json({ model, prompt: pseudoRandomText(1_000_000) });
  const nested = Buffer.from(`{"model":"${model}","prompt":${"[".repeat(2e6)}${"]".repeat(2e6)}}`);
  const ids = Buffer.from(`{"model":"${model}","prompt":[${Array(1_900_000).fill(1).join(",")}]}`);
  return [
    { name: "15 MB body", send: (p) => postBuffer(p, "/v1/completions", big) },
    { name: "15 MB body, chunked", send: (p) => postBuffer(p, "/v1/completions", big, true) },
    { name: '1 MB prompt of "a"', send: (p) => postBuffer(p, "/v1/chat/completions", runOfA) },
    { name: "1 MB random-text prompt", send: (p) => postBuffer(p, "/v1/completions", random) },
    { name: "4 MB nested JSON", send: (p) => postBuffer(p, "/v1/completions", nested, true) },
    { name: "3.8 MB token-id list", send: (p) => postBuffer(p, "/v1/completions", ids) },
  ];
}

/** A body that trickles in a byte every 100 ms and never completes. */
export function slowBody(port: number, model: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({
      host: "127.0.0.1",
      port,
      path: "/v1/completions",
      method: "POST",
      agent: false,
      headers: { "content-type": "application/json", "content-length": 100_000 },
    });
    const head = `{"model":"${model}","prompt":"`;
    let i = 0;
    const tick = setInterval(() => req.write(i++ < head.length ? head[i - 1]! : "x"), 100);
    const done = (status: number) => {
      clearInterval(tick);
      resolve(status);
    };
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => done(res.statusCode!));
    });
    req.on("error", () => done(0));
    setTimeout(() => {
      req.destroy();
      done(-1);
    }, 20_000).unref();
  });
}

export interface ProbeResult {
  /** Gaps between streamed chunks, ms. */
  gaps: number[];
  /** When each chunk arrived (performance.now()). */
  times: number[];
  ttftMs: number;
  tokens: number;
}

/**
 * A streaming completion of `tokens` tokens; records the gaps between chunks. Aborting `signal`
 * ends it early with what arrived so far.
 */
export async function probe(
  port: number,
  model: string,
  tokens: number,
  signal?: AbortSignal,
): Promise<ProbeResult> {
  const t0 = performance.now();
  const gaps: number[] = [];
  const times: number[] = [];
  let ttftMs = 0;
  let n = 0;
  try {
    const r = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model,
        prompt: "hello there",
        max_tokens: tokens,
        ignore_eos: true,
        stream: true,
      }),
      signal: signal
        ? AbortSignal.any([signal, AbortSignal.timeout(120_000)])
        : AbortSignal.timeout(60_000),
    });
    if (r.status !== 200) throw new Error(`probe: HTTP ${r.status}: ${await r.text()}`);
    for await (const chunk of r.body!) {
      const t = performance.now();
      if (times.length === 0) ttftMs = t - t0;
      else gaps.push(t - times[times.length - 1]!);
      times.push(t);
      n += (
        Buffer.from(chunk)
          .toString()
          .match(/^data: \{/gm) ?? []
      ).length;
    }
  } catch (e) {
    if (!signal?.aborted) throw e;
  }
  return { gaps, times, ttftMs, tokens: n };
}

/** TTFT of short streaming requests sent every `everyMs` until `stop()`. */
export function ttftSampler(port: number, model: string, everyMs: number) {
  const samples: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const r = await probe(port, model, 2);
      samples.push(r.ttftMs);
      await new Promise((res) => setTimeout(res, everyMs));
    }
  })();
  return {
    samples,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

export const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

export interface StallReport {
  loadAverage: number;
  baseline: {
    maxGapMs: number;
    p99GapMs: number;
    p50GapMs: number;
    ttftP50Ms: number;
    ttftP99Ms: number;
  };
  /**
   * Per hostile request: statuses, how long each try took, and the probe's largest gap during
   * each try (a stall the request causes shows in every try; the machine's noise does not).
   */
  hostile: { name: string; status: number[]; ms: number[]; maxGapMs: number[] }[];
  during: {
    p50GapMs: number;
    tokens: number;
    ttftSamples: number;
    ttftP50Ms: number;
    ttftP99Ms: number;
    ttftMaxMs: number;
    slowBodyStatus: number;
  };
  /** The engine's largest step lag (its own /metrics) after the baseline and at the end. */
  stepLagMaxMs: { baseline: number; end: number };
}

async function stepLagMaxMs(port: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`, {
    signal: AbortSignal.timeout(10_000),
  });
  const text = await r.text();
  const m = /^inferbench_engine_sim_step_lag_max_seconds\{[^}]*\} (\S+)$/m.exec(text);
  return m ? Number(m[1]) * 1000 : Number.NaN;
}

/** Largest gap between consecutive chunks where the later chunk arrived in [t0, t1 + tail]. */
function maxGapIn(times: number[], t0: number, t1: number): number {
  let max = 0;
  for (let i = 1; i < times.length; i++)
    if (times[i]! > t0 && times[i - 1]! < t1) max = Math.max(max, times[i]! - times[i - 1]!);
  return max;
}

/**
 * A baseline probe; then one long probe (and short TTFT probes, and a slow body) while each
 * hostile request is sent `tries` times in turn.
 */
export async function measureStalls(port: number, model: string, tries = 3): Promise<StallReport> {
  const hostiles = hostileRequests(model);
  await probe(port, model, 50); // warm-up
  const base = await probe(port, model, 300);
  const baseTtft = ttftSampler(port, model, 50);
  await new Promise((r) => setTimeout(r, 1000));
  await baseTtft.stop();
  const lagAfterBaseline = await stepLagMaxMs(port);
  const stop = new AbortController();
  const stream = probe(port, model, 8000, stop.signal); // ~50 s at 6 ms: outlasts the tries
  const ttft = ttftSampler(port, model, 50);
  const slow = slowBody(port, model);
  await new Promise((r) => setTimeout(r, 200));
  const windows = hostiles.map(() => [] as { status: number; t0: number; t1: number }[]);
  for (let k = 0; k < tries; k++)
    for (const [i, h] of hostiles.entries()) {
      const t0 = performance.now();
      const status = await h.send(port);
      windows[i]!.push({ status, t0, t1: performance.now() });
      await new Promise((r) => setTimeout(r, 50));
    }
  await ttft.stop();
  const slowBodyStatus = await slow;
  stop.abort();
  const during = await stream;
  return {
    loadAverage: loadavg()[0]!,
    baseline: {
      maxGapMs: Math.max(...base.gaps),
      p99GapMs: quantile(base.gaps, 0.99),
      p50GapMs: quantile(base.gaps, 0.5),
      ttftP50Ms: quantile(baseTtft.samples, 0.5),
      ttftP99Ms: quantile(baseTtft.samples, 0.99),
    },
    hostile: hostiles.map((h, i) => ({
      name: h.name,
      status: windows[i]!.map((w) => w.status),
      ms: windows[i]!.map((w) => Math.round(w.t1 - w.t0)),
      maxGapMs: windows[i]!.map((w) => Math.round(maxGapIn(during.times, w.t0, w.t1) * 10) / 10),
    })),
    during: {
      p50GapMs: quantile(during.gaps, 0.5),
      tokens: during.tokens,
      ttftSamples: ttft.samples.length,
      ttftP50Ms: quantile(ttft.samples, 0.5),
      ttftP99Ms: quantile(ttft.samples, 0.99),
      ttftMaxMs: Math.max(...ttft.samples),
      slowBodyStatus,
    },
    stepLagMaxMs: { baseline: lagAfterBaseline, end: await stepLagMaxMs(port) },
  };
}

// Standalone: start engine-sim (extra flags from argv) and print the report.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const p = runEngineSim([
    "--profile",
    "llama-3.1-8b@h100",
    "--model",
    "m",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--max-model-len",
    "8192",
    ...process.argv.slice(2),
  ]);
  try {
    const port = await readyPort(p, "m");
    console.log(JSON.stringify(await measureStalls(port, "m"), null, 2));
  } finally {
    p.child.kill("SIGTERM");
  }
}

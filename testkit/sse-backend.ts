/**
 * A tiny OpenAI-style SSE backend for router tests (and the router bench): streams `tokens`
 * chunks `tokenDelayMs` apart, exposes vLLM-named /metrics from its real in-flight count, and can
 * be told to hang or be killed. Loopback only.
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface SseBackendOptions {
  name?: string;
  tokens?: number;
  tokenDelayMs?: number;
  /** Metric names to expose: V1 (kv_cache_usage_perc), V0 (gpu_cache_usage_perc) or none. */
  metricNames?: "v1" | "v0" | "none";
  /** Write each token event in two pieces, cut inside a UTF-8 character (default true: tests). */
  splitChunks?: boolean;
}

export interface SseBackend {
  port: number;
  url: string;
  name: string;
  /** Streams currently open on the backend side. */
  open(): number;
  /** Requests received (POSTs). */
  received(): number;
  /** Every byte the backend wrote for each completed response, in order. */
  sent: Buffer[];
  /** When true, POSTs are accepted but never answered. */
  hang: boolean;
  /** Stop accepting and drop every connection (like a crashed process). */
  kill(): Promise<void>;
  close(): Promise<void>;
}

/** Chunks with a multi-byte UTF-8 character split across two writes. */
export function chunkFor(name: string, i: number): Buffer[] {
  const text = `data: {"id":"${name}","choices":[{"index":0,"delta":{"content":"tok${i} é😀"}}]}\n\n`;
  const b = Buffer.from(text, "utf8");
  const cut = b.indexOf(Buffer.from("😀")) + 2; // inside the 4-byte emoji
  return [b.subarray(0, cut), b.subarray(cut)];
}

export async function startSseBackend(opts: SseBackendOptions = {}): Promise<SseBackend> {
  const name = opts.name ?? "backend";
  const tokens = opts.tokens ?? 8;
  const delay = opts.tokenDelayMs ?? 0;
  const metricNames = opts.metricNames ?? "v1";
  const split = opts.splitChunks ?? true;
  let open = 0;
  let received = 0;
  const sockets = new Set<Socket>();
  const state: SseBackend = {
    port: 0,
    url: "",
    name,
    open: () => open,
    received: () => received,
    sent: [],
    hang: false,
    kill: async () => {},
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const path = req.url ?? "/";
    if (req.method === "GET" && path === "/health") {
      res.end("ok");
      return;
    }
    if (req.method === "GET" && path === "/metrics") {
      const kv = metricNames === "v0" ? "vllm:gpu_cache_usage_perc" : "vllm:kv_cache_usage_perc";
      const body =
        metricNames === "none"
          ? "# nothing vLLM here\nprocess_cpu_seconds_total 1\n"
          : `vllm:num_requests_running{model_name="m"} ${open}\nvllm:num_requests_waiting{model_name="m"} 0\n${kv}{model_name="m"} ${Math.min(1, open / 100)}\n`;
      res.end(body);
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received++;
      if (state.hang) return;
      let body: { stream?: boolean } = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {}
      open++;
      let closed = false;
      const out: Buffer[] = [];
      res.on("close", () => {
        if (!closed) {
          closed = true;
          open--;
        }
      });
      if (!body.stream) {
        const b = Buffer.from(JSON.stringify({ id: name, choices: [{ text: "hello" }] }));
        res.writeHead(200, { "content-type": "application/json", "content-length": b.length });
        res.end(b);
        state.sent.push(b);
        return;
      }
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      let i = 0;
      const step = () => {
        if (res.destroyed) return;
        if (i < tokens) {
          const pieces = chunkFor(name, i);
          for (const c of split ? pieces : [Buffer.concat(pieces)]) {
            res.write(c);
            out.push(c);
          }
          i++;
          if (delay > 0) setTimeout(step, delay);
          else setImmediate(step);
          return;
        }
        const done = Buffer.from("data: [DONE]\n\n");
        out.push(done);
        res.end(done);
        state.sent.push(Buffer.concat(out));
      };
      step();
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, r));
  state.port = (server.address() as AddressInfo).port;
  state.url = `http://127.0.0.1:${state.port}`;
  let closedServer = false;
  const shutdown = () =>
    new Promise<void>((resolve) => {
      if (closedServer) return resolve();
      closedServer = true;
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
  state.kill = shutdown;
  state.close = shutdown;
  return state;
}

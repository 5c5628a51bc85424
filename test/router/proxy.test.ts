import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { createLogger } from "../../lib/logger.ts";
import { parsePrometheusText, sumSamples } from "../../lib/prometheus.ts";
import {
  DEFAULT_POLICY_OPTIONS,
  type RouterConfig,
  type RunningRouter,
  startRouter,
} from "../../services/router/index.ts";
import type { RouterPolicy } from "../../stacks/plan-types.ts";
import {
  type SseBackend,
  type SseBackendOptions,
  startSseBackend,
} from "../../testkit/sse-backend.ts";

const silent = createLogger("test", () => {});

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function backends(n: number, opts: SseBackendOptions = {}): Promise<SseBackend[]> {
  const out: SseBackend[] = [];
  for (let i = 0; i < n; i++) {
    const b = await startSseBackend({ name: `b${i}`, ...opts });
    cleanups.push(() => b.close());
    out.push(b);
  }
  return out;
}

async function router(
  bs: SseBackend[],
  policy: RouterPolicy,
  over: Partial<RouterConfig> = {},
): Promise<RunningRouter> {
  const r = await startRouter({
    policy,
    port: 0,
    host: "127.0.0.1",
    pollIntervalMs: 50,
    requestTimeoutMs: 5000,
    options: DEFAULT_POLICY_OPTIONS,
    backends: { m: bs.map((b) => ({ engine: b.name, url: b.url })) },
    logger: silent,
    ...over,
  });
  cleanups.push(() => r.close());
  return r;
}

const clientAgent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
after(() => clientAgent.destroy());

interface Resp {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function post(
  base: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
  path = "/v1/chat/completions",
  timeoutMs = 10_000,
): Promise<Resp> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}${path}`,
      {
        method: "POST",
        agent: clientAgent,
        headers: { "content-type": "application/json", ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on("error", reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error("client timeout")));
    req.on("error", reject);
    req.end(body);
  });
}

const chat = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    model: "m",
    stream: true,
    messages: [{ role: "user", content: "hi" }],
    ...extra,
  });

async function metrics(r: RunningRouter) {
  const res = await fetch(`${r.url}/metrics`, { signal: AbortSignal.timeout(5000) });
  return parsePrometheusText(await res.text()).samples;
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return Date.now() - t0;
}

describe("router end to end", () => {
  it("streams byte-identical and names the backend", async () => {
    const bs = await backends(2, { tokens: 20 });
    const r = await router(bs, "round-robin");
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const res = await post(r.url, chat());
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-type"], "text/event-stream");
      const name = res.headers["x-inferbench-backend"] as string;
      seen.add(name);
      const b = bs.find((x) => x.name === name)!;
      assert.ok(
        b.sent.some((s) => s.equals(res.body)),
        "body differs from what the backend sent",
      );
    }
    assert.deepEqual([...seen].sort(), ["b0", "b1"]);
    const models = (await (await fetch(`${r.url}/v1/models`)).json()) as { data: { id: string }[] };
    assert.deepEqual(
      models.data.map((d) => d.id),
      ["m"],
    );
    const health = await fetch(`${r.url}/health`);
    assert.equal(health.status, 200);
  });

  it("serves 1,000 concurrent streams without errors", async () => {
    const bs = await backends(2, { tokens: 4, tokenDelayMs: 20 });
    const r = await router(bs, "least-busy");
    const results = await Promise.all(
      Array.from({ length: 1000 }, () => post(r.url, chat(), {}, "/v1/chat/completions", 30_000)),
    );
    for (const res of results) {
      assert.equal(res.status, 200);
      assert.ok(res.body.toString().endsWith("data: [DONE]\n\n"));
    }
    const s = await metrics(r);
    assert.equal(sumSamples(s, "inferbench_router_requests_total", { outcome: "ok" }), 1000);
    assert.equal(sumSamples(s, "inferbench_router_backend_in_flight"), 0);
    // least-busy spreads the burst (dispatched-since-poll), not all on one replica
    const picks = bs.map(
      (b) => sumSamples(s, "inferbench_router_backend_picks_total", { backend: b.name }) ?? 0,
    );
    assert.ok(Math.min(...picks) > 300, `picks ${picks}`);
  });

  it("cancels the upstream stream when the client disconnects", async () => {
    const [b] = await backends(1, { tokens: 100_000, tokenDelayMs: 5 });
    const r = await router([b!], "least-busy");
    await new Promise<void>((resolve, reject) => {
      const req = http.request(`${r.url}/v1/chat/completions`, { method: "POST" }, (res) => {
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", () => {});
      req.setTimeout(5000, () => reject(new Error("no first chunk")));
      req.end(chat());
    });
    await waitFor(() => b!.open() === 0, 5000, "upstream stream to close");
    await waitFor(() => r.replicas()[0]!.inFlight === 0, 5000, "router in-flight 0");
    const s = await metrics(r);
    assert.equal(
      sumSamples(s, "inferbench_router_requests_total", { outcome: "client_disconnect" }),
      1,
    );
  });

  it("ejects a killed backend within two poll intervals; the run completes with errors counted", async () => {
    const bs = await backends(2, { tokens: 5, tokenDelayMs: 10 });
    const poll = 250;
    const r = await router(bs, "least-busy", { pollIntervalMs: poll });
    let ok = 0;
    let failed = 0;
    let next = 0;
    let ejectedAfterMs = -1;
    const total = 300;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        if (i === 100) {
          const t0 = Date.now();
          await bs[1]!.kill();
          void waitFor(() => !r.replicas()[1]!.healthy, 10_000, "ejection").then(
            () => (ejectedAfterMs = Date.now() - t0),
          );
        }
        try {
          const res = await post(r.url, chat());
          if (res.status === 200 && res.body.toString().endsWith("[DONE]\n\n")) ok++;
          else failed++;
        } catch {
          failed++;
        }
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
    await waitFor(() => ejectedAfterMs >= 0, 10_000, "ejection");
    assert.equal(ok + failed, total);
    assert.ok(ok >= total - 20, `ok ${ok} failed ${failed}`);
    // Generous slack for a loaded CI machine; the router itself reacts at the next poll.
    assert.ok(ejectedAfterMs <= 2 * poll + 500, `ejected after ${ejectedAfterMs} ms`);
    const s = await metrics(r);
    const errs = sumSamples(s, "inferbench_router_backend_errors_total", { backend: "b1" }) ?? 0;
    assert.ok(errs >= 1, "errors of the killed backend are counted");
    const outcomes = s.filter((x) => x.name === "inferbench_router_requests_total");
    const counted = outcomes
      .filter((x) => x.labels.outcome !== "retried")
      .reduce((a, x) => a + x.value, 0);
    assert.equal(counted, total, "every client request has exactly one outcome");
  });

  it("treats replicas without vLLM gauges as unknown (counted), and reads V0 names", async () => {
    const none = await startSseBackend({ name: "none", metricNames: "none" });
    const v0 = await startSseBackend({ name: "v0", metricNames: "v0" });
    cleanups.push(
      () => none.close(),
      () => v0.close(),
    );
    const r = await router([none, v0], "least-busy");
    await waitFor(() => r.replicas()[1]!.metrics !== undefined, 5000, "V0 metrics");
    assert.equal(r.replicas()[1]!.metrics!.kvUsage, 0);
    for (let i = 0; i < 6; i++) assert.equal((await post(r.url, chat())).status, 200);
    const s = await metrics(r);
    assert.ok(
      (sumSamples(s, "inferbench_router_backend_errors_total", {
        backend: "none",
        kind: "metrics_missing",
      }) ?? 0) >= 1,
    );
    assert.equal(sumSamples(s, "inferbench_router_backend_metrics_fresh", { backend: "none" }), 0);
    assert.equal(r.replicas()[0]!.healthy, true, "unknown is not unhealthy");
  });

  it("retries a request that never reached a replica on another one", async () => {
    const [live] = await backends(1);
    const dead = await startSseBackend({ name: "dead" });
    const r = await router([dead, live!], "round-robin", { pollIntervalMs: 60_000 });
    await new Promise((res) => setTimeout(res, 200)); // let the start-up health probe pass
    await dead.close(); // port now refuses connections; the next poll is a minute away
    for (let i = 0; i < 4; i++) {
      const res = await post(r.url, chat());
      assert.equal(res.status, 200);
      assert.equal(res.headers["x-inferbench-backend"], "b0");
    }
    const s = await metrics(r);
    assert.ok(
      (sumSamples(s, "inferbench_router_backend_retries_total", { backend: "dead" }) ?? 0) >= 1,
    );
    assert.equal(r.replicas()[0]!.healthy, false);
  });

  it("times out a hanging backend with 504 and counts it", async () => {
    const [b] = await backends(1);
    b!.hang = true;
    const r = await router([b!], "round-robin", { requestTimeoutMs: 300 });
    const res = await post(r.url, chat());
    assert.equal(res.status, 504);
    assert.equal(JSON.parse(res.body.toString()).error.type, "timeout");
    const s = await metrics(r);
    assert.equal(sumSamples(s, "inferbench_router_backend_errors_total", { kind: "timeout" }), 1);
    assert.equal(sumSamples(s, "inferbench_router_requests_total", { outcome: "timeout" }), 1);
  });

  it("keeps sessions and prefixes on one replica", async () => {
    const bs = await backends(3);
    const rs = await router(bs, "session");
    const rp = await router(bs, "prefix-aware");
    for (const [r, mk] of [
      [rs, (i: number) => post(rs.url, chat({ user: "alice", n: i }))],
      [rp, () => post(rp.url, chat({ messages: [{ role: "system", content: "P".repeat(500) }] }))],
    ] as const) {
      void r;
      const names = new Set<string>();
      for (let i = 0; i < 6; i++)
        names.add((await mk(i)).headers["x-inferbench-backend"] as string);
      assert.equal(names.size, 1);
    }
  });

  it("answers malformed requests with clean OpenAI-style errors", async () => {
    const [b] = await backends(1);
    const r = await router([b!], "least-busy", { apiKey: "sekret", maxBodyBytes: 1000 });
    const auth = { authorization: "Bearer sekret" };
    const err = async (res: Resp, status: number) => {
      assert.equal(res.status, status);
      const j = JSON.parse(res.body.toString()) as { error: { message: string; type: string } };
      assert.equal(typeof j.error.message, "string");
      return j.error;
    };
    await err(await post(r.url, chat()), 401);
    await err(await post(r.url, chat(), { authorization: "Bearer nope" }), 401);
    await err(await post(r.url, "{nope", auth), 400);
    await err(await post(r.url, "[1,2]", auth), 400);
    await err(await post(r.url, '{"messages":[]}', auth), 400);
    const e = await err(await post(r.url, '{"model":"zzz"}', auth), 404);
    assert.match(e.message, /Served models: m/);
    await err(await post(r.url, JSON.stringify({ model: "m", pad: "x".repeat(5000) }), auth), 413);
    const ok = await post(r.url, chat(), auth);
    assert.equal(ok.status, 200);
    assert.equal(b!.received(), 1);
  });

  it("survives fuzzed bodies and raw garbage (never crashes)", async () => {
    const [b] = await backends(1, { tokens: 1 });
    const r = await router([b!], "prefix-aware", { maxBodyBytes: 4096 });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
          fc
            .record({
              model: fc.oneof(fc.constant("m"), fc.string(), fc.integer()),
              messages: fc.anything(),
              prompt: fc.anything(),
              user: fc.anything(),
              stream: fc.boolean(),
            })
            .map((o) => JSON.stringify(o)),
        ),
        async (body) => {
          const res = await post(r.url, body);
          assert.ok([200, 400, 404, 413].includes(res.status), `status ${res.status}`);
        },
      ),
      { numRuns: 150, seed: 42 },
    );
    for (const raw of ["GARBAGE\r\n\r\n", "POST /v1/x HTTP/1.1\r\ncontent-length: zz\r\n\r\n"]) {
      await new Promise<void>((resolve) => {
        const s = net.connect(r.port, "127.0.0.1", () => s.end(raw));
        s.on("data", () => {});
        s.on("close", () => resolve());
        s.on("error", () => resolve());
        s.setTimeout(3000, () => s.destroy());
      });
    }
    assert.equal((await fetch(`${r.url}/health`)).status, 200);
  });
});

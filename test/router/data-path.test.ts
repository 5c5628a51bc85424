/** The data path (proxy.ts) on its own: head rewriting, response headers, proxyRequest's outcomes. */
import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { createLogger } from "../../lib/logger.ts";
import { seededRandom } from "../../lib/random.ts";
import { DEFAULT_POLICY_OPTIONS } from "../../services/router/index.ts";
import {
  clientHeaders,
  type ProxyContext,
  proxyRequest,
  upstreamHead,
} from "../../services/router/proxy.ts";
import { buildGroups, type ModelGroup } from "../../services/router/replica.ts";
import { ADDED_LATENCY_BUCKETS, Counter, Histogram } from "../../services/router/stats.ts";

const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups) c();
});

describe("upstreamHead", () => {
  const raw = [
    "Host",
    "router:8000",
    "Content-Length",
    "12",
    "Connection",
    "keep-alive",
    "Keep-Alive",
    "timeout=5",
    "Transfer-Encoding",
    "chunked",
    "Expect",
    "100-continue",
    "Proxy-Authorization",
    "Basic x",
    "X-Inferbench-Backend",
    "spoofed",
    "Authorization",
    "Bearer k",
    "X-Session-Id",
    "s1",
    "Content-Type",
    "application/json",
  ];
  it("drops hop-by-hop headers and those the pool sets; keeps the rest as sent", () => {
    assert.equal(
      upstreamHead("POST", "/v1/chat/completions?x=1", raw, false),
      "POST /v1/chat/completions?x=1 HTTP/1.1\r\nAuthorization: Bearer k\r\nX-Session-Id: s1\r\nContent-Type: application/json\r\n",
    );
  });
  it("drops the client's authorization when the router checks its own key", () => {
    assert.doesNotMatch(upstreamHead("POST", "/v1/x", raw, true), /authorization/i);
  });
});

describe("clientHeaders", () => {
  it("relays the replica's headers minus hop-by-hop ones and names the backend", () => {
    const up = ["Content-Type", "text/event-stream", "Transfer-Encoding", "chunked", "X-Req", "1"];
    const lower = ["content-type", "transfer-encoding", "x-req"];
    assert.deepEqual(clientHeaders(up, lower, "m-1"), [
      "Content-Type",
      "text/event-stream",
      "X-Req",
      "1",
      "x-inferbench-backend",
      "m-1",
    ]);
  });
});

/** A raw TCP replica that answers every request with `reply` (then keeps the socket open). */
async function rawReplica(reply: string): Promise<string> {
  const server = net.createServer((s) => {
    s.on("error", () => {});
    s.once("data", () => s.write(reply));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A front server that hands every POST straight to proxyRequest for `group`. */
async function front(urls: string[]): Promise<{ url: string; ctx: ProxyContext; g: ModelGroup }> {
  const poolOpts = { connectTimeoutMs: 1000, headersTimeoutMs: 2000, keepAliveTimeoutMs: 1000 };
  const g = buildGroups({ m: urls.map((url, i) => ({ engine: `m-${i}`, url })) }, poolOpts).get(
    "m",
  )!;
  const ctx: ProxyContext = {
    policy: "round-robin",
    options: DEFAULT_POLICY_OPTIONS,
    rng: seededRandom(1),
    staleMs: 200,
    stripAuthorization: false,
    log: createLogger("test", () => {}),
    outcomes: new Counter(),
    added: new Histogram(ADDED_LATENCY_BUCKETS),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () =>
      proxyRequest(ctx, {
        req,
        res,
        group: g,
        body: Buffer.concat(chunks),
        sessionKey: undefined,
        hashes: undefined,
        tBody: performance.now(),
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => {
    server.closeAllConnections();
    server.close();
    for (const r of g.replicas) r.pool.destroy();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, ctx, g };
}

async function post(url: string): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    body: '{"model":"m"}',
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

describe("proxyRequest", () => {
  it("relays a response and settles the replica's counters", async () => {
    const up = await rawReplica(
      "HTTP/1.1 201 Created\r\ncontent-length: 5\r\nx-up: yes\r\n\r\nhello",
    );
    const f = await front([up]);
    const res = await post(f.url);
    assert.equal(res.status, 201);
    assert.equal(res.text, "hello");
    assert.equal(res.headers.get("x-up"), "yes");
    assert.equal(res.headers.get("x-inferbench-backend"), "m-0");
    const r = f.g.replicas[0]!;
    assert.deepEqual([r.inFlight, r.requests, r.completedSincePoll], [0, 1, 1]);
    assert.equal(f.ctx.outcomes.get("ok"), 1);
    assert.equal(f.ctx.added.count, 1);
  });

  it("retries a refused connection once on another replica, excluding the failed one", async () => {
    const live = await rawReplica("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    const f = await front(["http://127.0.0.1:1", live]);
    const res = await post(f.url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-inferbench-backend"), "m-1");
    assert.equal(f.g.replicas[0]!.retries, 1);
    assert.equal(f.g.replicas[0]!.healthy, false, "ejected");
    assert.equal(f.ctx.outcomes.get("retried"), 1);
  });

  it("answers 503 with retry-after when no replica is healthy", async () => {
    const f = await front(["http://127.0.0.1:1"]);
    f.g.replicas[0]!.healthy = false;
    const res = await post(f.url);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "1");
    assert.equal(JSON.parse(res.text).error.type, "service_unavailable");
    assert.equal(f.ctx.outcomes.get("no_replica"), 1);
  });

  it("cuts the client off when the replica's head cannot be relayed", async () => {
    const up = await rawReplica("HTTP/1.1 200 OK\r\nx-bad: a\x01b\r\ncontent-length: 1\r\n\r\nx");
    const f = await front([up]);
    await assert.rejects(post(f.url));
    assert.equal(f.ctx.outcomes.get("stream_error"), 1);
    assert.equal(f.g.replicas[0]!.inFlight, 0);
  });
});

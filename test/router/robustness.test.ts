/**
 * Hostile and broken clients (issue 19): OpenAI-shaped errors for everything the router refuses,
 * /health that says when nothing can be served, bounded bodies in size and time, loopback by
 * default and an API key that never leaks.
 */
import assert from "node:assert/strict";
import net, { type AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { createLogger } from "../../lib/logger.ts";
import {
  buildRouterConfig,
  DEFAULT_POLICY_OPTIONS,
  DEFAULTS,
  type RouterConfig,
  type RunningRouter,
  startRouter,
} from "../../services/router/index.ts";
import { type SseBackend, startSseBackend } from "../../testkit/sse-backend.ts";

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function backend(): Promise<SseBackend> {
  const b = await startSseBackend({ name: "b0", tokens: 2 });
  cleanups.push(() => b.close());
  return b;
}

async function router(
  urls: string[],
  over: Partial<RouterConfig> = {},
  logs: string[] = [],
): Promise<RunningRouter> {
  const r = await startRouter({
    policy: "least-busy",
    port: 0,
    host: "127.0.0.1",
    pollIntervalMs: 50,
    requestTimeoutMs: 5000,
    options: DEFAULT_POLICY_OPTIONS,
    backends: { m: urls.map((url, i) => ({ engine: `m-${i}`, url })) },
    logger: createLogger("router", (l) => logs.push(l)),
    ...over,
  });
  cleanups.push(() => r.close());
  return r;
}

interface Raw {
  status: number;
  head: string;
  body: string;
  /** The router closed the connection after answering. */
  closed: boolean;
  ms: number;
}

/**
 * Writes `parts` to the router on a raw socket (`gapMs` apart) and reads one response. Resolves
 * once the response is complete (content-length) and the socket has closed, or after `waitMs`.
 */
function raw(port: number, parts: (string | Buffer)[], gapMs = 0, waitMs = 5000): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const s = net.connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    let closed = false;
    const finish = () => {
      const text = buf.toString("latin1");
      const e = text.indexOf("\r\n\r\n");
      if (e < 0) return reject(new Error(`no response head (${text.length} bytes)`));
      const head = text.slice(0, e);
      resolve({
        status: Number(head.split(" ")[1]),
        head: head.toLowerCase(),
        body: Buffer.from(text.slice(e + 4), "latin1").toString("utf8"),
        closed,
        ms: Date.now() - t0,
      });
    };
    const timer = setTimeout(() => {
      s.destroy();
      finish();
    }, waitMs);
    s.on("data", (d) => (buf = Buffer.concat([buf, d])));
    s.on("error", () => {});
    s.on("close", () => {
      closed = true;
      clearTimeout(timer);
      finish();
    });
    let i = 0;
    const next = () => {
      if (s.destroyed || i >= parts.length) return;
      s.write(parts[i++]!);
      if (gapMs > 0) setTimeout(next, gapMs);
      else next();
    };
    s.on("connect", next);
  });
}

/** The error object of an OpenAI-shaped body, with exactly its four fields. */
function openAiErrorOf(body: string): { message: string; type: string; code: string | null } {
  const j = JSON.parse(body) as { error: Record<string, unknown> };
  assert.deepEqual(Object.keys(j).sort(), ["error"]);
  assert.deepEqual(Object.keys(j.error).sort(), ["code", "message", "param", "type"]);
  assert.equal(typeof j.error.message, "string");
  assert.equal(typeof j.error.type, "string");
  return j.error as { message: string; type: string; code: string | null };
}

const chat = JSON.stringify({
  model: "m",
  stream: true,
  messages: [{ role: "user", content: "hi" }],
});
const postHead = (len: number | "chunked", extra = "") =>
  `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${
    len === "chunked" ? "transfer-encoding: chunked" : `content-length: ${len}`
  }\r\n${extra}\r\n`;

describe("OpenAI-shaped errors", () => {
  it("answers malformed HTTP with 400 and oversized headers with 431, JSON bodies", async () => {
    const r = await router([(await backend()).url]);
    const bad = await raw(r.port, ["GARBAGE\r\n\r\n"]);
    assert.equal(bad.status, 400);
    assert.match(openAiErrorOf(bad.body).message, /malformed HTTP request/);
    assert.ok(bad.closed);
    const big = await raw(r.port, [postHead(2, `x-pad: ${"a".repeat(20_000)}\r\n`), "{}"]);
    assert.equal(big.status, 431);
    assert.equal(openAiErrorOf(big.body).type, "invalid_request_error");
  });

  it("uses the shape for 400, 404, 413 and 503 from the router itself", async () => {
    const r = await router([(await backend()).url], { maxBodyBytes: 1024 });
    const cases: [string | Buffer, number][] = [
      ["{nope", 400],
      ['{"model":"zzz"}', 404],
      [JSON.stringify({ model: "m", pad: "x".repeat(2000) }), 413],
    ];
    for (const [body, status] of cases) {
      const res = await raw(r.port, [postHead(Buffer.byteLength(body)), body]);
      assert.equal(res.status, status, String(body).slice(0, 20));
      openAiErrorOf(res.body);
    }
    const route = await raw(r.port, ["GET /v2/nothing HTTP/1.1\r\nhost: x\r\n\r\n"]);
    assert.equal(route.status, 404);
    openAiErrorOf(route.body);
    const dead = await router(["http://127.0.0.1:1"]);
    const res = await raw(dead.port, [postHead(Buffer.byteLength(chat)), chat]);
    assert.equal(res.status, 503);
    assert.match(res.head, /retry-after: 1/);
    assert.equal(openAiErrorOf(res.body).type, "service_unavailable");
  });
});

describe("/health", () => {
  it("answers 503 while no replica is healthy and 200 once one is", async () => {
    const b = await backend();
    const down = await router(["http://127.0.0.1:1"]);
    const t0 = Date.now();
    while (down.replicas()[0]!.healthy && Date.now() - t0 < 5000)
      await new Promise((res) => setTimeout(res, 10));
    const h = await fetch(`${down.url}/health`);
    assert.equal(h.status, 503);
    // Why nothing is healthy, per replica: the poll's own failure.
    assert.match(
      openAiErrorOf(await h.text()).message,
      /0 of 1\): m-0: \/(health|metrics): ECONNREFUSED/,
    );
    const up = await router([b.url, "http://127.0.0.1:1"]);
    const ok = await fetch(`${up.url}/health`);
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { status: string }).status, "ok");
  });
});

describe("request bodies", () => {
  it("answers a body that does not arrive in time with 408 and closes the connection", async () => {
    const b = await backend();
    const r = await router([b.url], { bodyTimeoutMs: 300 });
    // Headers promise 100 bytes; 10 come, then one byte every 50 ms (a slowloris body).
    const drip = Array.from({ length: 100 }, () => "x");
    const res = await raw(r.port, [postHead(100), '{"model":', ...drip], 50);
    assert.equal(res.status, 408);
    assert.equal(openAiErrorOf(res.body).code, "body_timeout");
    assert.ok(res.closed, "connection closed");
    assert.ok(res.ms >= 290 && res.ms < 1500, `408 after ${res.ms} ms`);
    assert.equal(b.received(), 0);
    const m = await (await fetch(`${r.url}/metrics`)).text();
    assert.match(m, /inferbench_router_requests_total\{outcome="body_timeout"\} 1/);
    // Without the option, a body is not held forever either.
    assert.ok(DEFAULTS.bodyTimeoutMs > 0 && DEFAULTS.bodyTimeoutMs <= 60_000);
  });

  it("caps bodies at 32 MiB by default: 413 for a streamed body over it, a 20 MiB one passes", async () => {
    assert.equal(DEFAULTS.maxBodyBytes, 32 * 1024 * 1024);
    const b = await backend();
    const r = await router([b.url]);
    // 20 MiB (over the old 16 MiB default) of valid JSON: routed.
    const pad = "x".repeat(20 * 1024 * 1024);
    const ok = await fetch(`${r.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "m", prompt: "hi", pad }),
      signal: AbortSignal.timeout(20_000),
    });
    assert.equal(ok.status, 200);
    await ok.text();
    // 40 MiB, chunked (no length to refuse it by): 413 once the cap is crossed, then closed.
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const frame = Buffer.concat([
      Buffer.from(`${chunk.length.toString(16)}\r\n`),
      chunk,
      Buffer.from("\r\n"),
    ]);
    const over = await raw(r.port, [
      postHead("chunked"),
      ...Array.from({ length: 40 }, () => frame),
    ]);
    assert.equal(over.status, 413);
    assert.equal(openAiErrorOf(over.body).code, "request_too_large");
    assert.ok(over.closed);
    // A declared length over the cap is refused before any body byte is read.
    const declared = await raw(r.port, [postHead(64 * 1024 * 1024)]);
    assert.equal(declared.status, 413);
    assert.ok(declared.closed);
  });
});

describe("listen address and API key", () => {
  it("serve router listens on 127.0.0.1 unless --host widens it", async () => {
    const base = { policy: "least-busy", backends: "m=http://127.0.0.1:9" };
    assert.equal(buildRouterConfig(base, {}).host, "127.0.0.1");
    assert.equal(buildRouterConfig({ ...base, host: "0.0.0.0" }, {}).host, "0.0.0.0");
    const r = await startRouter({
      ...buildRouterConfig({ ...base, port: "0" }, {}),
      logger: createLogger("t", () => {}),
    });
    cleanups.push(() => r.close());
    assert.equal(r.url.startsWith("http://127.0.0.1:"), true);
    const s = net.connect(r.port, "127.0.0.1");
    await new Promise<void>((res, rej) => s.on("connect", res).on("error", rej));
    assert.equal((s.address() as AddressInfo).address, "127.0.0.1");
    assert.equal(s.remoteAddress, "127.0.0.1");
    s.destroy();
  });

  it("takes the key from --api-key, --api-key-env or INFERBENCH_ROUTER_API_KEY", () => {
    const base = { policy: "least-busy", backends: "m=http://127.0.0.1:9" };
    const env = { INFERBENCH_ROUTER_API_KEY: "from-env-123", OTHER: "from-other-456" };
    assert.equal(buildRouterConfig(base, {}).apiKey, undefined);
    assert.equal(buildRouterConfig(base, env).apiKey, "from-env-123");
    assert.equal(buildRouterConfig({ ...base, apiKeyEnv: "OTHER" }, env).apiKey, "from-other-456");
    assert.equal(
      buildRouterConfig({ ...base, apiKey: "flag-key-789" }, env).apiKey,
      "flag-key-789",
    );
    assert.throws(
      () => buildRouterConfig({ ...base, apiKey: "" }, {}),
      (e: Error) => /--api-key/.test(e.message),
    );
  });

  it("checks the bearer key (401 OpenAI-shaped), keeps /health and /metrics open, never leaks it", async () => {
    const key = "sk-router-test-key-0123456789abcdef";
    const b = await backend();
    const logs: string[] = [];
    const r = await router([b.url, "http://127.0.0.1:1"], { apiKey: key }, logs);
    const seen: string[] = [];
    for (const auth of [
      undefined,
      "Bearer nope",
      `Bearer ${key}x`,
      `Basic ${key}`,
      `bearer ${key}`,
    ]) {
      const res = await fetch(`${r.url}/v1/chat/completions`, {
        method: "POST",
        headers: auth ? { authorization: auth } : {},
        body: chat,
      });
      assert.equal(res.status, 401, String(auth));
      const text = await res.text();
      assert.equal(openAiErrorOf(text).code, "invalid_api_key");
      seen.push(text, JSON.stringify([...res.headers]));
    }
    const models = await fetch(`${r.url}/v1/models`);
    assert.equal(models.status, 401);
    assert.equal((await fetch(`${r.url}/health`)).status, 200);
    const metrics = await fetch(`${r.url}/metrics`);
    assert.equal(metrics.status, 200);
    seen.push(await metrics.text());
    const ok = await fetch(`${r.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}` },
      body: chat,
    });
    assert.equal(ok.status, 200);
    await ok.text();
    assert.equal(b.received(), 1, "only the authorized request reached the replica");
    for (const text of [...seen, ...logs]) assert.ok(!text.includes(key), `key leaked: ${text}`);
    assert.ok(logs.some((l) => /API key required/.test(l)));
  });

  it("warns when it listens beyond loopback without a key", async () => {
    const logs: string[] = [];
    await router(["http://127.0.0.1:9"], { host: "0.0.0.0" }, logs);
    assert.ok(
      logs.some((l) => /without an API key/.test(l)),
      logs.join("\n"),
    );
  });
});

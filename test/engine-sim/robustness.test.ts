/**
 * Hostile and malformed requests (issue 19, finding 2): the body is capped before anything is
 * parsed, the context is checked before the whole prompt is tokenised, and every refusal is a
 * clear 4xx in vLLM v0.14's shape and wording.
 */
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../../lib/logger.ts";
import { getTokenizer } from "../../lib/tokenizer.ts";
import { DEFAULT_MAX_BODY_BYTES } from "../../services/engine-sim/body.ts";
import {
  type EngineHost,
  type EngineSpec,
  startEngineHost,
} from "../../services/engine-sim/host.ts";

const quiet = createLogger("test", () => {});
const TIMEOUT = 20_000;
const MAX_LEN = 8192;

function spec(name: string): EngineSpec {
  return {
    name,
    model: name,
    gpus: [0],
    port: 0,
    kvcached: false,
    prefixCaching: true,
    maxModelLen: MAX_LEN,
    emulator: { profile: "llama-3.1-8b@h100" },
  };
}

interface Reply {
  status: number;
  body: { error: { message: string; type: string; param: null; code: number } };
  ms: number;
}

/** POSTs `body` (a Buffer goes as is; `chunked` omits Content-Length) and times the answer. */
function post(
  port: number,
  path: string,
  body: object | string | Buffer,
  opts: { chunked?: boolean } = {},
): Promise<Reply> {
  const buf = Buffer.isBuffer(body)
    ? body
    : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(opts.chunked ? {} : { "content-length": buf.length }),
        },
        timeout: TIMEOUT,
      },
      (res) => {
        answered = true;
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => {
          try {
            resolve({
              status: res.statusCode!,
              body: JSON.parse(text),
              ms: performance.now() - t0,
            });
          } catch (e) {
            reject(new Error(`${res.statusCode}: not JSON: ${text.slice(0, 200)} (${e})`));
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("client timeout")));
    // The server may answer (413) before the whole body is written.
    req.on("error", (e) => {
      if (!answered) reject(e);
    });
    if (opts.chunked) {
      for (let i = 0; i < buf.length; i += 65_536) req.write(buf.subarray(i, i + 65_536));
      req.end();
    } else req.end(buf);
  });
}

function assertVllmError(r: Reply, status: number, message: RegExp | string, type?: string) {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body), ["error"]);
  const e = r.body.error;
  assert.deepEqual(Object.keys(e).sort(), ["code", "message", "param", "type"]);
  assert.equal(e.code, status);
  assert.equal(e.param, null);
  if (typeof message === "string") assert.equal(e.message, message);
  else assert.match(e.message, message);
  if (type) assert.equal(e.type, type);
}

describe("engine-sim robustness: caps, bounded checks, vLLM's errors", () => {
  let host: EngineHost;
  let small: EngineHost;
  let port: number;
  let smallPort: number;
  const tk = getTokenizer("llama3");

  before(async () => {
    host = await startEngineHost([spec("m")], { startupDelaySec: 0, log: quiet });
    port = host.ports.m!;
    small = await startEngineHost([spec("s")], {
      startupDelaySec: 0,
      log: quiet,
      maxBodyBytes: 65_536,
      requestTimeoutSec: 1,
    });
    smallPort = small.ports.s!;
  });
  after(async () => {
    await host.close();
    await small.close();
  });

  it("a 15 MB body is refused with 413 before it is parsed (default cap 4 MiB)", async () => {
    assert.equal(DEFAULT_MAX_BODY_BYTES, 4 * 1024 * 1024);
    const prompt = "lorem ipsum ".repeat(1_250_000); // 15 MB
    const body = Buffer.from(JSON.stringify({ model: "m", prompt, max_tokens: 10 }));
    for (const chunked of [false, true]) {
      const r = await post(port, "/v1/completions", body, { chunked });
      assertVllmError(
        r,
        413,
        `request body is larger than ${DEFAULT_MAX_BODY_BYTES} bytes (engine-sim --max-body-bytes)`,
        "Request Entity Too Large",
      );
      assert.ok(r.ms < 3000, `413 took ${r.ms.toFixed(0)} ms`);
    }
  });

  it("the cap is a flag: 64 KiB refuses a 100 KB body, declared or chunked, and keeps serving", async () => {
    const body = Buffer.from(JSON.stringify({ model: "s", prompt: "x".repeat(100_000) }));
    assertVllmError(await post(smallPort, "/v1/completions", body), 413, /larger than 65536/);
    assertVllmError(
      await post(smallPort, "/v1/completions", body, { chunked: true }),
      413,
      /larger than 65536/,
    );
    const ok = await post(smallPort, "/v1/completions", {
      model: "s",
      prompt: "hi",
      max_tokens: 2,
    });
    assert.equal(ok.status, 200);
  });

  it("a 1 MB prompt over the context: vLLM's 400, without tokenising the whole prompt", async () => {
    const prompt = "a".repeat(1_000_000); // 8.5 s to tokenise in one go
    const chat = await post(port, "/v1/chat/completions", {
      model: "m",
      messages: [{ role: "user", content: prompt }],
    });
    assertVllmError(
      chat,
      400,
      /^This model's maximum context length is 8192 tokens\. However, your request has (\d+) input tokens\. Please reduce the length of the input messages\.$/,
      "BadRequestError",
    );
    const counted = Number(/has (\d+) input/.exec(chat.body.error.message)![1]);
    assert.ok(counted > MAX_LEN && counted < 10_000, String(counted));
    assert.ok(chat.ms < 3000, `400 took ${chat.ms.toFixed(0)} ms`);
    // Completions name what max_tokens leaves of the context, as vLLM v0.14 does.
    const cmpl = await post(port, "/v1/completions", { model: "m", prompt, max_tokens: 100 });
    assertVllmError(cmpl, 400, /^This model's maximum context length is 8092 tokens\. However/);
    assert.ok(cmpl.ms < 3000, `400 took ${cmpl.ms.toFixed(0)} ms`);
  });

  it("prompt + max_tokens over the context: vLLM's exact message with the exact count", async () => {
    const prompt = "The quick brown fox jumps over the lazy dog. ".repeat(50);
    const n = tk.encode(prompt).length;
    const r = await post(port, "/v1/chat/completions", {
      model: "m",
      messages: [{ role: "user", content: prompt }],
      max_completion_tokens: 8000,
    });
    assertVllmError(
      r,
      400,
      `'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum context length is 8192 tokens and your request has ${n} input tokens (8000 > 8192 - ${n}).`,
    );
    const exact = await post(port, "/v1/completions", {
      model: "m",
      prompt: Array(MAX_LEN).fill(1),
    });
    assertVllmError(exact, 400, "max_tokens must be at least 1, got 0.");
  });

  it("bad values get vLLM's messages: negative, huge and fractional max_tokens, min_tokens", async () => {
    const base = { model: "m", prompt: "hello" };
    assertVllmError(
      await post(port, "/v1/completions", { ...base, max_tokens: -5 }),
      400,
      "max_tokens must be at least 1, got -5.",
    );
    assertVllmError(
      await post(port, "/v1/chat/completions", {
        model: "m",
        messages: [{ role: "user", content: "hello" }],
        max_tokens: 1e15,
      }),
      400,
      /^'max_tokens' or 'max_completion_tokens' is too large: 1000000000000000\. /,
    );
    assertVllmError(
      await post(port, "/v1/completions", { ...base, max_tokens: 1e15 }),
      400,
      /^This model's maximum context length is -999999999991808 tokens\./,
    );
    assertVllmError(
      await post(port, "/v1/completions", { ...base, max_tokens: 2.5 }),
      400,
      /^max_tokens:/,
    );
    assertVllmError(
      await post(port, "/v1/completions", { ...base, max_tokens: 3, min_tokens: 4 }),
      400,
      "min_tokens must be less than or equal to max_tokens=3, got 4.",
    );
    assertVllmError(
      await post(port, "/v1/completions", { ...base, min_tokens: -1 }),
      400,
      "min_tokens must be greater than or equal to 0, got -1.",
    );
  });

  it("malformed JSON, wrong types, unknown model, bad token ids: clear 4xx, never a crash", async () => {
    const cases: [string, object | string, number, RegExp | string, string?][] = [
      ["/v1/completions", "{", 400, /Invalid JSON/],
      ["/v1/completions", "", 400, /Invalid JSON/],
      ["/v1/completions", "null", 400, "request body must be a JSON object"],
      ["/v1/completions", { model: 1, prompt: "x" }, 400, /^model:/],
      ["/v1/completions", { model: "m", prompt: { text: "x" } }, 400, /^prompt: expected/],
      ["/v1/completions", { model: "m", prompt: [1, "x"] }, 400, /^prompt\.1: expected/],
      ["/v1/completions", { model: "m", prompt: [1, -2] }, 400, /^prompt\.1: expected/],
      ["/v1/completions", { model: "m", prompt: [[1, 2.5]] }, 400, /^prompt\.0\.1: expected/],
      ["/v1/completions", { model: "m", prompt: [999_999] }, 400, /Token id 999999 is out/],
      ["/v1/chat/completions", { model: "m", messages: {} }, 400, /^messages:/],
      ["/v1/chat/completions", { model: "m", messages: [{ content: "x" }] }, 400, /role/],
      [
        "/v1/completions",
        { model: "gpt-9", prompt: "x" },
        404,
        "The model `gpt-9` does not exist.",
        "NotFoundError",
      ],
      [
        "/v1/completions",
        `{"model":"m","prompt":${"[".repeat(100)}${"]".repeat(100)}}`,
        400,
        /nests deeper than 64/,
      ],
    ];
    for (const [path, body, status, message, type] of cases)
      assertVllmError(await post(port, path, body), status, message, type);
    const ok = await post(port, "/v1/completions", { model: "m", prompt: "hi", max_tokens: 2 });
    assert.equal(ok.status, 200);
  });

  it("JSON that would stall JSON.parse is refused while it streams in", async () => {
    const nested = `{"model":"m","prompt":${"[".repeat(500_000)}${"]".repeat(500_000)}}`;
    const r1 = await post(port, "/v1/completions", nested, { chunked: true });
    assertVllmError(r1, 400, "request JSON nests deeper than 64 levels");
    const objects = `{"model":"m","x":[${Array(150_000).fill("{}").join(",")}],"prompt":"x"}`;
    assertVllmError(
      await post(port, "/v1/completions", objects),
      400,
      "request JSON holds more than 100000 objects and arrays",
    );
    const values = `{"model":"m","prompt":[${Array(1_100_000).fill("1").join(",")}]}`;
    assertVllmError(
      await post(port, "/v1/completions", values),
      400,
      "request JSON holds more than 1000000 values",
    );
    // A long token-id prompt within the limits is checked against the context, not by zod.
    const ids = await post(port, "/v1/completions", { model: "m", prompt: Array(500_000).fill(7) });
    assertVllmError(ids, 400, /However, your request has 500000 input tokens/);
    assert.ok(ids.ms < 2000, `${ids.ms} ms`);
  });

  it("a body that never completes gets 408 after --request-timeout, not a held connection", async () => {
    const t0 = performance.now();
    const r = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request({
        host: "127.0.0.1",
        port: smallPort,
        path: "/v1/completions",
        method: "POST",
        headers: { "content-type": "application/json", "content-length": 1000 },
      });
      req.on("response", (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode!, text }));
      });
      req.on("error", reject);
      req.write('{"model":"s","prompt":"');
      setTimeout(() => req.destroy(), 5000).unref();
    });
    const ms = performance.now() - t0;
    assert.equal(r.status, 408);
    const e = JSON.parse(r.text).error;
    assert.equal(e.type, "Request Timeout");
    assert.match(e.message, /request body not received within 1 s/);
    assert.ok(ms >= 900 && ms < 3000, `${ms.toFixed(0)} ms`);
  });

  it("malformed HTTP gets a JSON 400; headers that never end get 408 within the timeout", async () => {
    const raw = (data: string) =>
      new Promise<{ text: string; ms: number }>((resolve) => {
        const t0 = performance.now();
        const sock = net.connect(smallPort, "127.0.0.1", () => sock.write(data));
        let text = "";
        sock.on("data", (c: Buffer) => (text += c));
        sock.on("close", () => resolve({ text, ms: performance.now() - t0 }));
        setTimeout(() => sock.destroy(), 8000).unref();
      });
    const garbage = await raw("GARBAGE\r\n\r\n");
    assert.match(garbage.text, /^HTTP\/1\.1 400 /);
    assert.match(garbage.text, /"type":"BadRequestError"/);
    const stuck = await raw("POST /v1/completions HTTP/1.1\r\nHost: x\r\n");
    assert.match(stuck.text, /^HTTP\/1\.1 408 /);
    assert.match(stuck.text, /request not received within 1 s/);
    assert.ok(stuck.ms >= 900 && stuck.ms < 4000, `${stuck.ms.toFixed(0)} ms`);
  });
});

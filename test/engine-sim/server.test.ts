import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import OpenAI from "openai";
import { createLogger } from "../../lib/logger.ts";
import { parsePrometheusText, sumSamples } from "../../lib/prometheus.ts";
import { getTokenizer } from "../../lib/tokenizer.ts";
import {
  type EngineHost,
  type EngineSpec,
  startEngineHost,
} from "../../services/engine-sim/host.ts";

const quiet = createLogger("test", () => {});
const TIMEOUT = 10_000;

function spec(name: string, over: Partial<EngineSpec> = {}): EngineSpec {
  return {
    name,
    model: name,
    gpus: [0],
    port: 0,
    kvcached: false,
    prefixCaching: true,
    maxModelLen: 4096,
    emulator: { profile: "llama-3.1-8b@h100" },
    ...over,
  };
}

async function post(port: number, path: string, body: string | object) {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT),
  });
  return { status: r.status, text: await r.text() };
}

async function metrics(port: number) {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`, {
    signal: AbortSignal.timeout(TIMEOUT),
  });
  assert.equal(r.status, 200);
  return parsePrometheusText(await r.text()).samples;
}

describe("engine-sim HTTP surface", () => {
  let host: EngineHost;
  let port: number;
  let client: OpenAI;
  const tk = getTokenizer("llama3");

  before(async () => {
    // Short natural (EOS) lengths keep requests without max_tokens fast.
    host = await startEngineHost([spec("llama")], {
      startupDelaySec: 0,
      log: quiet,
      seed: 7,
      naturalOutputLen: { median: 16, sigma: 0.8, cap: 64 },
    });
    port = host.ports.llama!;
    client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: "unused",
      timeout: TIMEOUT,
      maxRetries: 0,
    });
  });
  after(async () => {
    await host.close();
  });

  it("chat, non-streaming: usage is exact for the tokenizer", async () => {
    const r = await client.chat.completions.create({
      model: "llama",
      messages: [{ role: "user", content: "Tell me a story about a cat." }],
      max_tokens: 20,
      ...({ ignore_eos: true } as object),
    });
    const text = r.choices[0]!.message.content!;
    assert.equal(r.choices[0]!.finish_reason, "length");
    assert.equal(r.usage!.completion_tokens, 20);
    assert.equal(tk.count(text), 20);
    assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + 20);
    assert.equal(r.usage!.prompt_tokens, tk.count("Tell me a story about a cat."));
  });

  it("chat, streaming with include_usage", async () => {
    const stream = await client.chat.completions.create({
      model: "llama",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 12,
      stream: true,
      stream_options: { include_usage: true },
      ...({ ignore_eos: true } as object),
    });
    let text = "";
    let chunks = 0;
    let usage: OpenAI.CompletionUsage | undefined;
    let finish: string | null = null;
    for await (const c of stream) {
      chunks++;
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.delta.content ?? "";
        finish = ch.finish_reason ?? finish;
      }
    }
    assert.equal(finish, "length");
    assert.ok(chunks >= 13);
    assert.equal(usage?.completion_tokens, 12);
    assert.equal(tk.count(text), 12);
  });

  it("completions, streaming and not; ignore_eos and min_tokens", async () => {
    const r = await client.completions.create({
      model: "llama",
      prompt: "Once upon a time",
      max_tokens: 30,
      // vLLM extensions pass through the SDK as extra body fields.
      ...({ ignore_eos: true } as object),
    });
    assert.equal(r.usage!.completion_tokens, 30);
    assert.equal(tk.count(r.choices[0]!.text), 30);
    const s = await client.completions.create({
      model: "llama",
      prompt: "Once upon a time",
      max_tokens: 50,
      stream: true,
      stream_options: { include_usage: true },
      ...({ min_tokens: 10 } as object),
    });
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const c of s) {
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) text += ch.text;
    }
    assert.ok(usage!.completion_tokens >= 10 && usage!.completion_tokens <= 50);
    assert.equal(tk.count(text), usage!.completion_tokens);
  });

  it("without max_tokens it stops on its own (seeded length, finish_reason stop or length)", async () => {
    const r = await client.completions.create({
      model: "llama",
      prompt: "hello",
      max_tokens: null,
    });
    assert.ok(["stop", "length"].includes(r.choices[0]!.finish_reason));
    assert.ok(r.usage!.completion_tokens >= 1 && r.usage!.completion_tokens <= 64);
    assert.equal(tk.count(r.choices[0]!.text), r.usage!.completion_tokens);
  });

  it("/v1/models and /health", async () => {
    const models = await client.models.list();
    assert.deepEqual(
      models.data.map((m) => m.id),
      ["llama"],
    );
    const h = await fetch(`http://127.0.0.1:${port}/health`, {
      signal: AbortSignal.timeout(TIMEOUT),
    });
    assert.equal(h.status, 200);
  });

  it("/metrics parses, carries model_name and engine labels, and counters only go up", async () => {
    const before = await metrics(port);
    for (const name of [
      "vllm:num_requests_running",
      "vllm:num_requests_waiting",
      "vllm:kv_cache_usage_perc",
      "vllm:time_to_first_token_seconds_count",
      "vllm:inter_token_latency_seconds_count",
      "vllm:request_queue_time_seconds_count",
      "vllm:cache_config_info",
      "inferbench_engine_sim_step_lag_seconds_count",
    ])
      assert.ok(
        sumSamples(before, name, { model_name: "llama", engine: "llama" }) !== undefined,
        name,
      );
    await client.completions.create({ model: "llama", prompt: "more", max_tokens: 5 });
    const afterS = await metrics(port);
    for (const s of before) {
      if (!s.name.endsWith("_total") && !s.name.endsWith("_count") && !s.name.endsWith("_bucket"))
        continue;
      const now = afterS.find(
        (a) => a.name === s.name && JSON.stringify(a.labels) === JSON.stringify(s.labels),
      );
      assert.ok(now && now.value >= s.value, `${s.name} went down`);
    }
    const gen = (x: typeof before) => sumSamples(x, "vllm:generation_tokens_total")!;
    assert.equal(gen(afterS) - gen(before), 5);
  });

  it("a repeated prompt hits the prefix cache", async () => {
    const hits = async () =>
      sumSamples(await metrics(port), "vllm:prefix_cache_hits_total", { engine: "llama" })!;
    const h0 = await hits();
    const content = "The history of the printing press is long and varied. ".repeat(40);
    for (let i = 0; i < 2; i++)
      await client.chat.completions.create({
        model: "llama",
        messages: [{ role: "user", content }],
        max_tokens: 2,
      });
    assert.ok((await hits()) - h0 >= tk.count(content) - 16);
  });

  it("is deterministic for a seed", async () => {
    const texts: string[] = [];
    for (let k = 0; k < 2; k++) {
      const h = await startEngineHost([spec("d")], {
        startupDelaySec: 0,
        log: quiet,
        seed: 3,
        naturalOutputLen: { median: 8, sigma: 0.8, cap: 100 },
      });
      try {
        const c = new OpenAI({
          baseURL: `http://127.0.0.1:${h.ports.d}/v1`,
          apiKey: "unused",
          timeout: TIMEOUT,
          maxRetries: 0,
        });
        let all = "";
        for (let i = 0; i < 3; i++) {
          const r = await c.completions.create({ model: "d", prompt: `p${i}`, max_tokens: 12 });
          all += `${r.choices[0]!.finish_reason}:${r.choices[0]!.text}|`;
        }
        texts.push(all);
      } finally {
        await h.close();
      }
    }
    assert.equal(texts[0], texts[1]);
  });

  describe("bad input", () => {
    const cases: [string, string, string | object, number, RegExp][] = [
      ["malformed JSON", "/v1/completions", "{nope", 400, /JSON/],
      ["not an object", "/v1/completions", "[1,2]", 400, /JSON object/],
      [
        "wrong type",
        "/v1/completions",
        { model: "llama", prompt: "x", max_tokens: "ten" },
        400,
        /max_tokens/,
      ],
      ["missing messages", "/v1/chat/completions", { model: "llama" }, 400, /messages/],
      [
        "unknown model",
        "/v1/completions",
        { model: "gpt-9", prompt: "x" },
        404,
        /gpt-9.*does not exist/,
      ],
      ["n > 1", "/v1/completions", { model: "llama", prompt: "x", n: 2 }, 400, /n must be 1|n > 1/],
      [
        "prompt + max_tokens over max_model_len",
        "/v1/completions",
        { model: "llama", prompt: "x", max_tokens: 4096 },
        400,
        // vLLM v0.14 completions: the "context length" named is what max_tokens leaves.
        /^This model's maximum context length is 0 tokens\. However, your request has 1 input tokens\./,
      ],
      [
        "min_tokens > max_tokens",
        "/v1/completions",
        { model: "llama", prompt: "x", max_tokens: 2, min_tokens: 5 },
        400,
        /min_tokens/,
      ],
    ];
    for (const [name, path, body, status, re] of cases) {
      it(name, async () => {
        const r = await post(port, path, body);
        assert.equal(r.status, status, r.text);
        const err = JSON.parse(r.text) as {
          error: { message: string; type: string; code: number };
        };
        assert.match(err.error.message, re);
        assert.equal(err.error.code, status);
        assert.ok(err.error.type.length > 0);
      });
    }
    it("unknown path → 404, wrong method → 405", async () => {
      const r = await fetch(`http://127.0.0.1:${port}/v2/nothing`, {
        signal: AbortSignal.timeout(TIMEOUT),
      });
      assert.equal(r.status, 404);
      await r.text();
      const g = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
        signal: AbortSignal.timeout(TIMEOUT),
      });
      assert.equal(g.status, 405);
      await g.text();
    });
    it("the SDK surfaces errors", async () => {
      await assert.rejects(
        client.completions.create({ model: "other", prompt: "x", max_tokens: 1 }),
        (e: unknown) => e instanceof OpenAI.NotFoundError,
      );
    });
  });

  it("fuzz: random bodies never crash the server", async () => {
    // Short lengths keep the fuzz fast: max_model_len 32 bounds ignore_eos, a tiny EOS cap the rest.
    const fuzzHost = await startEngineHost([spec("llama", { maxModelLen: 32 })], {
      startupDelaySec: 0,
      log: quiet,
      naturalOutputLen: { median: 2, sigma: 0.5, cap: 4 },
    });
    const fport = fuzzHost.ports.llama!;
    try {
      const body = fc.oneof(
        fc.string(),
        fc.json(),
        fc
          .record(
            {
              model: fc.oneof(fc.constant("llama"), fc.string()),
              prompt: fc.oneof(
                fc.string({ maxLength: 50 }),
                fc.array(fc.integer({ min: -5, max: 200000 }), { maxLength: 5 }),
                fc.anything(),
              ),
              messages: fc.oneof(
                fc.array(
                  fc.record({
                    role: fc.string(),
                    content: fc.oneof(fc.string({ maxLength: 30 }), fc.anything()),
                  }),
                  { maxLength: 3 },
                ),
                fc.anything(),
              ),
              max_tokens: fc.oneof(fc.integer({ min: -3, max: 6 }), fc.anything()),
              min_tokens: fc.oneof(fc.integer({ min: -1, max: 4 }), fc.anything()),
              stream: fc.oneof(fc.boolean(), fc.anything()),
              n: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.anything()),
              stream_options: fc.anything(),
              ignore_eos: fc.anything(),
            },
            { requiredKeys: [] },
          )
          .map((o) => JSON.stringify(o)),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom("/v1/completions", "/v1/chat/completions"),
          body,
          async (path, b) => {
            const r = await post(fport, path, b);
            return [200, 400, 404].includes(r.status);
          },
        ),
        { numRuns: 150, seed: 42 },
      );
      const h = await fetch(`http://127.0.0.1:${fport}/health`, {
        signal: AbortSignal.timeout(TIMEOUT),
      });
      assert.equal(h.status, 200);
    } finally {
      await fuzzHost.close();
    }
  });
});

describe("engine-sim host options", () => {
  it("/health is 503 until the start-up delay passes; requests get 503 meanwhile", async () => {
    let t = 100;
    const host = await startEngineHost(
      [spec("m", { emulator: { profile: "llama-3.1-8b@h100", startupDelaySec: 30 } })],
      {
        log: quiet,
        now: () => t,
      },
    );
    try {
      const port = host.ports.m!;
      const h = await fetch(`http://127.0.0.1:${port}/health`, {
        signal: AbortSignal.timeout(TIMEOUT),
      });
      assert.equal(h.status, 503);
      await h.text();
      const r = await post(port, "/v1/completions", { model: "m", prompt: "x", max_tokens: 1 });
      assert.equal(r.status, 503);
      t = 131;
      const h2 = await fetch(`http://127.0.0.1:${port}/health`, {
        signal: AbortSignal.timeout(TIMEOUT),
      });
      assert.equal(h2.status, 200);
      await h2.text();
    } finally {
      await host.close();
    }
  });

  it("V0 metric names on request", async () => {
    const host = await startEngineHost([spec("m")], {
      log: quiet,
      v0Metrics: true,
      startupDelaySec: 0,
    });
    try {
      const s = await metrics(host.ports.m!);
      assert.ok(sumSamples(s, "vllm:gpu_cache_usage_perc") !== undefined);
      assert.equal(sumSamples(s, "vllm:kv_cache_usage_perc"), undefined);
      assert.ok(sumSamples(s, "vllm:time_per_output_token_seconds_count") !== undefined);
    } finally {
      await host.close();
    }
  });

  it("fault injection: error rate and crash after N requests", async () => {
    let crashed = "";
    const host = await startEngineHost([spec("a"), spec("b")], {
      log: quiet,
      startupDelaySec: 0,
      faults: { a: { errorRates: { "500": 1 } }, b: { crashAfterRequests: 2 } },
      onCrash: (n) => {
        crashed = n;
      },
    });
    try {
      const r = await post(host.ports.a!, "/v1/completions", {
        model: "a",
        prompt: "x",
        max_tokens: 1,
      });
      assert.equal(r.status, 500);
      assert.match(r.text, /injected/);
      const ok = await post(host.ports.b!, "/v1/completions", {
        model: "b",
        prompt: "x",
        max_tokens: 1,
      });
      assert.equal(ok.status, 200);
      await assert.rejects(
        post(host.ports.b!, "/v1/completions", { model: "b", prompt: "x", max_tokens: 1 }),
      );
      for (let i = 0; i < 50 && crashed === ""; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(crashed, "b");
    } finally {
      await host.close();
    }
  });

  it("plan engines on one GPU with kvcached share a pool; a client abort frees its blocks", async () => {
    const host = await startEngineHost(
      [
        spec("x", { kvcached: true, prefixCaching: false }),
        spec("y", { kvcached: true, prefixCaching: false }),
      ],
      { log: quiet, startupDelaySec: 0 },
    );
    try {
      const x = host.engines.x!;
      const y = host.engines.y!;
      const before = y.core.kvUsage;
      const ac = new AbortController();
      const r = await fetch(`http://127.0.0.1:${host.ports.x}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "x",
          prompt: "word ".repeat(3000),
          max_tokens: 1000,
          stream: true,
        }),
        signal: ac.signal,
      });
      const reader = r.body!.getReader();
      await reader.read();
      assert.ok(x.core.kv.usedBlocks > 0);
      assert.ok(y.core.kvUsage >= before);
      ac.abort();
      for (let i = 0; i < 100 && x.core.kv.usedBlocks > 0; i++)
        await new Promise((r) => setTimeout(r, 10));
      assert.equal(x.core.kv.usedBlocks, 0);
      assert.equal(x.core.counters.success.abort, 1);
    } finally {
      await host.close();
    }
  });
});

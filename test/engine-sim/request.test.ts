import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  checkPromptLength,
  checkTokenIds,
  type EngineRequest,
  errorBody,
  JsonShapeGuard,
  MAX_JSON_DEPTH,
  parseRequest,
} from "../../services/engine-sim/request.ts";

const chat = (body: object) => parseRequest("chat", JSON.stringify(body), "m");
const cmpl = (body: object) => parseRequest("completions", JSON.stringify(body), "m");

function ok(r: ReturnType<typeof parseRequest>): EngineRequest {
  if (!r.ok) assert.fail(`expected a request, got ${r.error.status} ${r.error.message}`);
  return r.value;
}

function err(r: ReturnType<typeof parseRequest>): { status: number; message: string } {
  if (r.ok) assert.fail(`expected an error, got ${JSON.stringify(r.value)}`);
  return { status: r.error.status, message: r.error.message };
}

describe("engine-sim request validation (pure)", () => {
  it("a chat body becomes a typed request: joined contents, max_completion_tokens first", () => {
    const r = ok(
      chat({
        model: "m",
        messages: [
          { role: "system", content: "be brief" },
          { role: "user", content: [{ type: "text", text: "hi" }, { type: "image_url" }] },
          { role: "assistant", content: null },
        ],
        max_tokens: 50,
        max_completion_tokens: 20,
        stream: true,
        stream_options: { include_usage: true },
        seed: 3,
        ignore_eos: true,
        min_tokens: 2,
        temperature: 0.7,
        unknown_extension: { anything: 1 },
      }),
    );
    assert.deepEqual(r, {
      kind: "chat",
      model: "m",
      prompt: { text: "be brief\nhi" },
      maxTokens: 20,
      minTokens: 2,
      ignoreEos: true,
      stream: true,
      includeUsage: true,
      seed: 3,
    });
  });

  it("completions: text, a one-element list, token ids; include_usage only when streaming", () => {
    assert.deepEqual(ok(cmpl({ model: "m", prompt: "hello" })).prompt, { text: "hello" });
    assert.deepEqual(ok(cmpl({ model: "m", prompt: ["hello"] })).prompt, { text: "hello" });
    assert.deepEqual(ok(cmpl({ model: "m", prompt: [1, 2, 3] })).prompt, { ids: [1, 2, 3] });
    assert.deepEqual(ok(cmpl({ model: "m", prompt: [[4, 5]] })).prompt, { ids: [4, 5] });
    const r = ok(cmpl({ model: "m", prompt: "x", stream_options: { include_usage: true } }));
    assert.equal(r.stream, false);
    assert.equal(r.includeUsage, false);
    assert.equal(r.maxTokens, undefined);
  });

  it("bad bodies are 400s with the field named, an unknown model is vLLM's 404", () => {
    assert.equal(parseRequest("chat", "{not json", "m").ok, false);
    assert.match(err(parseRequest("chat", "{not json", "m")).message, /Invalid JSON/);
    for (const raw of ["[1,2]", "null", "3", '"s"'])
      assert.deepEqual(err(parseRequest("chat", raw, "m")), {
        status: 400,
        message: "request body must be a JSON object",
      });
    assert.match(err(chat({ model: 5, messages: [] })).message, /^model: model must be a string/);
    assert.match(err(chat({ model: "m", messages: [] })).message, /messages must not be empty/);
    assert.match(err(chat({ model: "m", messages: "hi" })).message, /^messages:/);
    assert.match(
      err(chat({ model: "m", messages: [{ role: "user", content: 7 }] })).message,
      /^messages\.0\.content:/,
    );
    assert.match(err(cmpl({ model: "m", prompt: "x", max_tokens: 1.5 })).message, /^max_tokens:/);
    assert.match(err(cmpl({ model: "m", prompt: "x", stream: "yes" })).message, /^stream:/);
    assert.match(err(cmpl({ model: "m" })).message, /^prompt:/);
    assert.deepEqual(err(cmpl({ model: "other", prompt: "x" })), {
      status: 404,
      message: "The model `other` does not exist.",
    });
    assert.match(err(cmpl({ model: "m", prompt: "x", n: 2 })).message, /n must be 1/);
    assert.match(err(cmpl({ model: "m", prompt: [] })).message, /prompt must not be empty/);
    assert.match(err(cmpl({ model: "m", prompt: ["a", "b"] })).message, /batched prompts/);
  });

  it("checks the token count against the context in vLLM v0.14's order and words", () => {
    const c10 = ok(cmpl({ model: "m", prompt: "x", max_tokens: 10 }));
    assert.equal(checkPromptLength(c10, 5, 100), undefined);
    assert.equal(checkPromptLength(c10, 90, 100), undefined);
    // Completions: the renderer's max_length is max_model_len − max_tokens.
    assert.equal(
      checkPromptLength(c10, 91, 100)?.message,
      "This model's maximum context length is 90 tokens. However, your request has 91 input tokens. Please reduce the length of the input messages.",
    );
    assert.match(checkPromptLength(c10, 0, 100)!.message, /empty/);
    const open = ok(cmpl({ model: "m", prompt: "x" }));
    assert.equal(checkPromptLength(open, 99, 100), undefined);
    assert.equal(
      checkPromptLength(open, 100, 100)?.message,
      "max_tokens must be at least 1, got 0.",
    );
    assert.match(
      checkPromptLength(open, 101, 100)!.message,
      /length is 100 tokens\. However, your request has 101/,
    );
    // Chat: _validate_input.
    const ch = ok(chat({ model: "m", messages: [{ role: "user", content: "x" }], max_tokens: 10 }));
    assert.equal(
      checkPromptLength(ch, 91, 100)?.message,
      "'max_tokens' or 'max_completion_tokens' is too large: 10. This model's maximum context length is 100 tokens and your request has 91 input tokens (10 > 100 - 91).",
    );
    assert.match(
      checkPromptLength(ch, 100, 100)!.message,
      /length is 100 tokens\. However, your request has 100 input/,
    );
    // Then SamplingParams.
    const neg = ok(cmpl({ model: "m", prompt: "x", max_tokens: -3 }));
    assert.equal(checkPromptLength(neg, 5, 100)?.message, "max_tokens must be at least 1, got -3.");
    const minOverMax = ok(cmpl({ model: "m", prompt: "x", max_tokens: 3, min_tokens: 4 }));
    assert.equal(
      checkPromptLength(minOverMax, 5, 100)?.message,
      "min_tokens must be less than or equal to max_tokens=3, got 4.",
    );
    const chatZero = ok(
      chat({
        model: "m",
        messages: [{ role: "u", content: "x" }],
        max_completion_tokens: 0,
        max_tokens: 7,
      }),
    );
    assert.equal(chatZero.maxTokens, 7, "vLLM: max_completion_tokens or max_tokens");
  });

  it("token ids beyond the vocabulary are refused as vLLM does", () => {
    assert.equal(checkTokenIds([0, 5, 99], 100), undefined);
    assert.equal(checkTokenIds([0, 100, 3], 100)?.message, "Token id 100 is out of vocabulary");
  });

  it("JsonShapeGuard: depth, containers and values, across chunk boundaries and inside strings", () => {
    const feedAll = (text: string, chunk: number) => {
      const g = new JsonShapeGuard();
      const buf = Buffer.from(text);
      for (let i = 0; i < buf.length; i += chunk) {
        const e = g.feed(buf.subarray(i, i + chunk));
        if (e) return e.message;
      }
      return undefined;
    };
    const deep = `{"a":${"[".repeat(MAX_JSON_DEPTH)}${"]".repeat(MAX_JSON_DEPTH)}}`;
    const deeper = `[{"a":${"[".repeat(MAX_JSON_DEPTH)}${"]".repeat(MAX_JSON_DEPTH)}}]`;
    for (const chunk of [1, 3, 1000]) {
      assert.equal(feedAll(`{"a":"${"[".repeat(1000)}\\"${"{".repeat(1000)}"}`, chunk), undefined);
      assert.equal(feedAll(deep.slice(1), chunk), undefined);
      assert.equal(
        feedAll(deeper, chunk),
        `request JSON nests deeper than ${MAX_JSON_DEPTH} levels`,
      );
    }
    assert.match(
      feedAll(`[${Array(100_001).fill("{}").join(",")}]`, 65_536)!,
      /objects and arrays/,
    );
    assert.match(feedAll(`[${Array(1_000_002).fill("1").join(",")}]`, 65_536)!, /1000000 values/);
    assert.equal(feedAll(`[${Array(999_999).fill("1").join(",")}]`, 65_536), undefined);
  });

  it("errors render in vLLM's nested shape", () => {
    assert.deepEqual(JSON.parse(errorBody(404, "gone", "NotFoundError")), {
      error: { message: "gone", type: "NotFoundError", param: null, code: 404 },
    });
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type ApiRequestRules,
  blockHashes,
  parseApiRequest,
  promptText,
} from "../../services/router/index.ts";

const rules = (over: Partial<ApiRequestRules> = {}): ApiRequestRules => ({
  models: new Set(["llama", "qwen"]),
  hashPrefix: false,
  prefixBlockChars: 64,
  ...over,
});
const parse = (body: string, over: Partial<ApiRequestRules> = {}) =>
  parseApiRequest(Buffer.from(body), rules(over));

describe("parseApiRequest", () => {
  it("reads model and user; hashes the prompt only for prefix policies", () => {
    const body = {
      model: "qwen",
      user: "alice",
      messages: [{ role: "user", content: "x".repeat(200) }],
    };
    const plain = parse(JSON.stringify(body));
    assert.deepEqual(plain, { ok: true, model: "qwen", user: "alice", hashes: undefined });
    const hashed = parse(JSON.stringify(body), { hashPrefix: true });
    assert.ok(hashed.ok);
    assert.deepEqual(hashed.hashes, blockHashes(promptText(body), 64, "qwen"));
    assert.equal(hashed.hashes!.length, 3);
  });

  it("ignores a user that is not a non-empty string", () => {
    for (const user of ["", 7, null, ["a"]]) {
      const r = parse(JSON.stringify({ model: "llama", user }));
      assert.ok(r.ok);
      assert.equal(r.user, undefined);
    }
  });

  it("rejects bad bodies with 400 and unknown models with 404 listing the served ones", () => {
    const cases: [string, number, RegExp, string | null][] = [
      ["{nope", 400, /^invalid JSON body: /, null],
      ["", 400, /^invalid JSON body: /, null],
      ["[1,2]", 400, /must be a JSON object/, null],
      ["null", 400, /must be a JSON object/, null],
      ['"llama"', 400, /must be a JSON object/, null],
      ['{"messages":[]}', 400, /missing `model`/, "missing_model"],
      ['{"model":""}', 400, /missing `model`/, "missing_model"],
      ['{"model":3}', 400, /missing `model`/, "missing_model"],
      [
        '{"model":"gpt"}',
        404,
        /`gpt` does not exist\. Served models: llama, qwen$/,
        "model_not_found",
      ],
    ];
    for (const [body, status, message, code] of cases) {
      const r = parse(body);
      assert.equal(r.ok, false, body);
      if (r.ok) continue;
      assert.equal(r.status, status, body);
      assert.match(r.message, message, body);
      assert.equal(r.code, code, body);
      assert.equal(r.outcome, status === 404 ? "unknown_model" : "bad_request");
    }
  });

  it("never throws, whatever the bytes (property)", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
          fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v))),
          fc
            .record({
              model: fc.constantFrom("llama", "x"),
              messages: fc.anything(),
              prompt: fc.anything(),
            })
            .map((v) => Buffer.from(JSON.stringify(v))),
        ),
        (body) => {
          const r = parseApiRequest(body, rules({ hashPrefix: true }));
          if (r.ok) assert.ok(Array.isArray(r.hashes));
          else assert.ok(r.status === 400 || r.status === 404);
        },
      ),
    );
  });
});

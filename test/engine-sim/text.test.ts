import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { seededRandom } from "../../lib/random.ts";
import { getTokenizer } from "../../lib/tokenizer.ts";
import { outputTokenAt, planOutput, safeVocab } from "../../services/engine-sim/text.ts";

const natural = { median: 200, sigma: 0.8, cap: 4096 };

describe("output text", () => {
  for (const family of ["llama3", "qwen"] as const) {
    it(`${family}: re-tokenising the concatenated output gives exactly the emitted tokens`, () => {
      const tk = getTokenizer(family);
      const vocab = safeVocab(tk);
      assert.ok(vocab.ids.length > 1000);
      fc.assert(
        fc.property(fc.integer(), fc.integer({ min: 1, max: 300 }), (seed, n) => {
          const ids = Array.from({ length: n }, (_, i) => outputTokenAt(vocab, seed >>> 0, i));
          const text = ids.map((id) => vocab.textOf.get(id)!).join("");
          const back = tk.encode(text);
          return back.length === n && back.every((v, i) => v === ids[i]);
        }),
        { numRuns: 40 },
      );
    });
  }
});

describe("planOutput", () => {
  const arb = fc.record({
    promptTokens: fc.integer({ min: 1, max: 5000 }),
    maxTokens: fc.option(fc.integer({ min: 1, max: 3000 }), { nil: undefined }),
    minTokens: fc.option(fc.integer({ min: 0, max: 500 }), { nil: undefined }),
    ignoreEos: fc.boolean(),
    seed: fc.integer(),
  });

  it("never exceeds max_tokens or the room max_model_len leaves; honours min_tokens and ignore_eos", () => {
    fc.assert(
      fc.property(arb, (a) => {
        const maxModelLen = 8192;
        const p = planOutput({ ...a, maxModelLen, natural }, seededRandom(a.seed));
        const limit = a.maxTokens ?? maxModelLen - a.promptTokens;
        if (p.len < 1 || p.len > limit) return false;
        if (a.ignoreEos) return p.len === limit && p.finishReason === "length";
        if (p.finishReason === "length") return p.len === limit;
        return p.len >= (a.minTokens ?? 0) && p.len <= natural.cap;
      }),
      { numRuns: 300 },
    );
  });

  it("is deterministic for a seed and spreads lengths", () => {
    const lens = Array.from(
      { length: 200 },
      (_, i) =>
        planOutput({ promptTokens: 10, maxModelLen: 100_000, natural }, seededRandom(i)).len,
    );
    const again = Array.from(
      { length: 200 },
      (_, i) =>
        planOutput({ promptTokens: 10, maxModelLen: 100_000, natural }, seededRandom(i)).len,
    );
    assert.deepEqual(lens, again);
    const sorted = [...lens].sort((a, b) => a - b);
    const median = sorted[100]!;
    assert.ok(median > 120 && median < 320, `median ${median}`);
    assert.ok(new Set(lens).size > 100);
  });
});

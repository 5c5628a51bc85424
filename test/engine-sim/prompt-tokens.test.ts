import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { getTokenizer } from "../../lib/tokenizer.ts";
import {
  CHUNK_CHARS,
  ChunkedEncoder,
  chunkEnd,
  FORCED_CUT_CHARS,
} from "../../services/engine-sim/prompt-tokens.ts";

/** Pieces that stress the pre-tokenizers: specials, contractions, CJK, combining marks, emoji. */
const PIECES = [
  "a",
  "Zeta",
  "é",
  "e\u0301",
  "中文",
  "，",
  "。",
  "123",
  "4",
  " ",
  "   ",
  "\n",
  "\r\n",
  "\t",
  ".",
  ",",
  "!",
  "'",
  "'s",
  "’",
  "-",
  "_",
  "(",
  "<|eot_id|>",
  "<|im_start|>",
  "<think>",
  "😀",
  "ß",
  "İ",
  "\u00a0",
  "€",
  "ـ",
  "я",
  "한",
  "\u200b",
];
const text = fc
  .array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 80 })
  .map((a) => a.join(""));

function encodeChunked(family: "llama3" | "qwen", s: string, chunk: number) {
  const e = new ChunkedEncoder(getTokenizer(family), s, Number.MAX_SAFE_INTEGER, chunk);
  while (!e.run(1e9));
  return e;
}

describe("chunked prompt tokenisation", () => {
  for (const family of ["llama3", "qwen"] as const) {
    it(`${family}: cut at piece boundaries, the ids are those of encoding the whole text`, () => {
      const tk = getTokenizer(family);
      fc.assert(
        fc.property(text, fc.integer({ min: 4, max: 24 }), (s, chunk) => {
          const e = encodeChunked(family, s, chunk);
          fc.pre(e.exact);
          assert.deepEqual(e.ids, tk.encode(s));
        }),
        { numRuns: 400 },
      );
    });

    it(`${family}: real conversations (fixtures) tokenise exactly in 1024- and 64-char chunks`, () => {
      const tk = getTokenizer(family);
      const convs = JSON.parse(
        readFileSync(
          new URL(
            "../../fixtures/datasets/fastchat_dummy_conversation_sharegpt.json",
            import.meta.url,
          ),
          "utf8",
        ),
      ) as { conversations: { value: string }[] }[];
      const texts = convs.flatMap((c) => c.conversations.map((t) => t.value)).slice(0, 40);
      texts.push(texts.join("\n\n"));
      for (const t of texts)
        for (const chunk of [1024, 64]) {
          const e = encodeChunked(family, t, chunk);
          if (chunk === 1024) assert.ok(e.exact, `a cut inside a piece in ${t.slice(0, 60)}`);
          if (e.exact) assert.deepEqual(e.ids, tk.encode(t));
        }
    });
  }

  it("chunkEnd cuts after a word, before whitespace or non-ASCII punctuation; never in a pair", () => {
    assert.deepEqual(chunkEnd("hello world", 0, 8), { end: 5, forced: false });
    assert.deepEqual(chunkEnd("中文中文，中文中文", 0, 6), { end: 4, forced: false });
    assert.deepEqual(chunkEnd("short", 0, 8), { end: 5, forced: false });
    // ASCII punctuation after a word is no cut: special tokens are made of it.
    assert.deepEqual(chunkEnd("abcdefgh<|eot_id|>", 0, 16), { end: 4, forced: true });
    // A run with no boundary is cut every FORCED_CUT_CHARS (the tokenizer caches shorter pieces),
    // never between the halves of a surrogate pair.
    const run = "a".repeat(5000);
    assert.deepEqual(chunkEnd(run, 0), { end: FORCED_CUT_CHARS, forced: true });
    assert.deepEqual(chunkEnd(run, 100), { end: 100 + FORCED_CUT_CHARS, forced: true });
    const pair = `${"a".repeat(FORCED_CUT_CHARS - 1)}😀${"a".repeat(2000)}`;
    assert.deepEqual(chunkEnd(pair, 0), { end: FORCED_CUT_CHARS - 1, forced: true });
    const words = "word ".repeat(1000);
    const cut = chunkEnd(words, 0);
    assert.equal(cut.forced, false);
    assert.ok(cut.end > CHUNK_CHARS - 5 && cut.end <= CHUNK_CHARS && words[cut.end] === " ");
  });

  it("stops counting once past the limit: a 1 MB run costs what the context costs", () => {
    const tk = getTokenizer("llama3");
    const e = new ChunkedEncoder(tk, "a".repeat(1_000_000), 8192);
    let runs = 0;
    while (!e.run(0.5)) runs++;
    assert.ok(e.overLimit);
    assert.ok(e.ids.length > 8192 && e.ids.length < 8192 + 200, String(e.ids.length));
    assert.ok(runs >= 1, "encoded in slices, not in one call");
    // A run with no boundary is cut mid-piece: flagged as not exact.
    assert.equal(e.exact, false);
  });

  it("each run returns after its budget (at least one chunk): the event loop gets turns", () => {
    const tk = getTokenizer("llama3");
    const words = "lorem ipsum dolor sit amet ".repeat(4000);
    let t = 0;
    const clock = () => t;
    const e = new ChunkedEncoder(tk, words, Number.MAX_SAFE_INTEGER);
    const encode = tk.encode;
    let calls = 0;
    const counting = {
      ...tk,
      encode: (s: string) => {
        calls++;
        t += 1; // each chunk "takes" 1 ms
        return encode(s);
      },
    };
    const e2 = new ChunkedEncoder(counting, words, Number.MAX_SAFE_INTEGER);
    assert.equal(e2.run(2.5, clock), false);
    assert.equal(calls, 3);
    assert.equal(e2.run(0, clock), false);
    assert.equal(calls, 4);
    while (!e2.run(1e9, clock));
    while (!e.run(1e9));
    assert.deepEqual(e2.ids, e.ids);
    assert.deepEqual(e.ids, tk.encode(words));
  });
});

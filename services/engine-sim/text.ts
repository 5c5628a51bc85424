/**
 * Output text: token ids drawn (seeded) from a list of "safe" vocabulary entries — a space followed
 * by lowercase letters, each verified to re-encode to itself. Byte-level BPE pre-tokenisers split
 * before every " word", so any concatenation re-tokenises to exactly the drawn ids.
 */

import { getTokenizer, type Tokenizer, type TokenizerFamily } from "../../lib/tokenizer.ts";

export interface SafeVocab {
  ids: number[];
  texts: string[];
  textOf: Map<number, string>;
  /** The text as a JSON string literal (SSE chunks are assembled without JSON.stringify). */
  jsonOf: Map<number, string>;
}

const SAFE_RE = /^ [a-z]{2,12}$/;
const MAX_SAFE = 4096;
const cache = new Map<TokenizerFamily, SafeVocab>();

/** First MAX_SAFE safe ids in id order (BPE ids roughly follow frequency: common words). */
export function safeVocab(tokenizer: Tokenizer): SafeVocab {
  const hit = cache.get(tokenizer.family);
  if (hit) return hit;
  const ids: number[] = [];
  const texts: string[] = [];
  for (let i = 0; i < tokenizer.vocabSize && ids.length < MAX_SAFE; i++) {
    const t = tokenizer.decode([i]);
    if (!SAFE_RE.test(t)) continue;
    const back = tokenizer.encode(t);
    if (back.length !== 1 || back[0] !== i) continue;
    ids.push(i);
    texts.push(t);
  }
  const v: SafeVocab = {
    ids,
    texts,
    textOf: new Map(ids.map((id, i) => [id, texts[i]!])),
    jsonOf: new Map(ids.map((id, i) => [id, JSON.stringify(texts[i]!)])),
  };
  cache.set(tokenizer.family, v);
  return v;
}

export function safeVocabFor(family: TokenizerFamily): SafeVocab {
  return safeVocab(getTokenizer(family));
}

export function mixSeed(...parts: (number | string)[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    const s = String(p);
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  }
  return h;
}

export interface OutputPlanInput {
  promptTokens: number;
  maxModelLen: number;
  maxTokens?: number | undefined;
  minTokens?: number | undefined;
  ignoreEos?: boolean | undefined;
  /** Natural length distribution (log-normal), capped. */
  natural: { median: number; sigma: number; cap: number };
}

export interface OutputPlan {
  len: number;
  finishReason: "stop" | "length";
}

/**
 * How many tokens a request produces and why it stops (vLLM semantics): the limit is max_tokens,
 * or whatever room max_model_len leaves; ignore_eos runs to the limit; otherwise a seeded
 * "EOS" length (at least min_tokens) ends it with `stop` if it comes first.
 */
export function planOutput(inp: OutputPlanInput, random: () => number): OutputPlan {
  const limit = Math.max(1, inp.maxTokens ?? inp.maxModelLen - inp.promptTokens);
  if (inp.ignoreEos) return { len: limit, finishReason: "length" };
  // Box–Muller normal → log-normal around the median.
  const u1 = Math.max(random(), 1e-12);
  const u2 = random();
  const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  let natural = Math.round(inp.natural.median * Math.exp(inp.natural.sigma * z));
  natural = Math.min(Math.max(1, natural), inp.natural.cap);
  natural = Math.max(natural, inp.minTokens ?? 0, 1);
  if (natural >= limit) return { len: limit, finishReason: "length" };
  return { len: natural, finishReason: "stop" };
}

/** The i-th output token of a request: a pure function of (request seed, i), so any length is free. */
export function outputTokenAt(vocab: SafeVocab, requestSeed: number, i: number): number {
  let h = Math.imul(requestSeed ^ Math.imul(i + 1, 0x9e3779b1), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return vocab.ids[h % vocab.ids.length]!;
}

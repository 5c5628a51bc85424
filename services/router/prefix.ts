/**
 * Prompt-prefix bookkeeping for prefix-aware and kv-aware routing: the prompt text is cut into
 * blocks of `blockChars` characters (≈ 16 tokens at 64 chars) and hashed as a chain, so block i's
 * hash identifies the whole prefix up to it. A bounded LRU index remembers which replicas were
 * sent each prefix (bitmask of replica positions, up to 31 replicas per model).
 */
import { fnv1a } from "./policies.ts";

/** The text a replica's prefix cache sees, from an OpenAI chat or completions body. */
export function promptText(body: Record<string, unknown>): string {
  const messages = body.messages;
  if (Array.isArray(messages)) {
    let out = "";
    for (const m of messages) {
      if (m === null || typeof m !== "object") continue;
      const { role, content } = m as { role?: unknown; content?: unknown };
      out += `${typeof role === "string" ? role : ""}:`;
      if (typeof content === "string") out += content;
      else if (Array.isArray(content))
        for (const part of content)
          if (part && typeof part === "object" && typeof part.text === "string") out += part.text;
      out += "\n";
    }
    return out;
  }
  const prompt = body.prompt;
  if (typeof prompt === "string") return prompt;
  if (Array.isArray(prompt)) {
    const first = prompt[0];
    if (typeof first === "string") return first;
    if (typeof first === "number") return prompt.join(",");
    if (Array.isArray(first)) return first.join(",");
  }
  return "";
}

/** Chained hashes of the full blocks of `text` (a trailing partial block is not cached). */
export function blockHashes(text: string, blockChars: number, seed: string): number[] {
  const n = Math.floor(text.length / blockChars);
  const out = new Array<number>(n);
  let h = fnv1a(seed);
  for (let i = 0; i < n; i++) {
    h = fnv1a(text.slice(i * blockChars, (i + 1) * blockChars), h);
    out[i] = h;
  }
  return out;
}

export const MAX_TRACKED_REPLICAS = 31;

export class PrefixIndex {
  private readonly map = new Map<number, number>();
  constructor(readonly capacity = 200_000) {}

  get size(): number {
    return this.map.size;
  }

  /** Matched leading blocks per replica position (length `replicaCount`). */
  match(hashes: readonly number[], replicaCount: number): number[] {
    const out = new Array<number>(replicaCount).fill(0);
    for (let i = 0; i < hashes.length; i++) {
      const mask = this.map.get(hashes[i]!);
      if (!mask) break; // the chain is broken for everyone
      for (let r = 0; r < replicaCount && r < MAX_TRACKED_REPLICAS; r++)
        if (mask & (1 << r)) out[r] = i + 1;
    }
    return out;
  }

  /** Remember that `replica` now holds every block of this prompt (refreshes LRU order). */
  record(hashes: readonly number[], replica: number): void {
    if (replica < 0 || replica >= MAX_TRACKED_REPLICAS) return;
    const bit = 1 << replica;
    for (const h of hashes) {
      const prev = this.map.get(h);
      if (prev !== undefined) this.map.delete(h);
      this.map.set(h, (prev ?? 0) | bit);
    }
    while (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as number;
      this.map.delete(oldest);
    }
  }
}

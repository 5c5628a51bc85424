/**
 * KV cache of one engine: 16-token blocks, refcounted, prefix caching by chained block hashes with
 * an LRU free list (vLLM V1's KVCacheManager, simplified), and — in KVCached mode — memory taken
 * from a physical page pool shared with the other engines on the same GPU.
 */

export const BLOCK_SIZE = 16;
export const PAGE_BYTES = 2 * 1024 * 1024;

/** One virtual GPU's physical page pool (KVCached): shared by every engine pinned to it. */
export class PagePool {
  usedPages = 0;
  constructor(readonly totalPages: number) {}
  get freePages(): number {
    return this.totalPages - this.usedPages;
  }
  tryTake(n: number): boolean {
    if (n > this.freePages) return false;
    this.usedPages += n;
    return true;
  }
  give(n: number): void {
    this.usedPages = Math.max(0, this.usedPages - n);
  }
}

export interface Block {
  id: number;
  ref: number;
  /** Chained hash once the block is full and registered in the prefix cache. */
  hash: number | undefined;
  /** Free-list links (KvCache internal). */
  prev: Block | undefined;
  next: Block | undefined;
  inFree: boolean;
}

function newBlock(id: number, ref: number): Block {
  return { id, ref, hash: undefined, prev: undefined, next: undefined, inFree: false };
}

/**
 * The LRU free list as an intrusive doubly linked list: O(1) append, removal and head. (A Map
 * used as a queue leaves deleted entries in its table until a rehash, so reading its first entry
 * after many head deletions scans all of them — that dominated step planning at high load.)
 */
class FreeList {
  private head: Block | undefined;
  private tail: Block | undefined;
  size = 0;
  first(): Block | undefined {
    return this.head;
  }
  push(b: Block): void {
    if (b.inFree) return; // already listed: keeps its LRU position (as Map.set did)
    b.inFree = true;
    b.prev = this.tail;
    b.next = undefined;
    if (this.tail) this.tail.next = b;
    else this.head = b;
    this.tail = b;
    this.size++;
  }
  delete(b: Block): void {
    if (!b.inFree) return;
    b.inFree = false;
    if (b.prev) b.prev.next = b.next;
    else this.head = b.next;
    if (b.next) b.next.prev = b.prev;
    else this.tail = b.prev;
    b.prev = undefined;
    b.next = undefined;
    this.size--;
  }
}

/** FNV-1a-style 52-bit chained hash of (parent, 16 tokens); the chain is seeded by the model. */
export function hashBlock(parent: number, tokens: readonly number[], start: number): number {
  let h1 = (parent ^ 0x811c9dc5) >>> 0;
  let h2 = (Math.floor(parent / 0x100000000) ^ 0x1b873593) >>> 0;
  for (let i = start; i < start + BLOCK_SIZE; i++) {
    const t = tokens[i] ?? 0;
    h1 = Math.imul(h1 ^ t, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ (t + 0x9e3779b9), 0x85ebca6b) >>> 0;
    h2 = (h2 ^ (h2 >>> 13)) >>> 0;
  }
  return (h2 & 0xfffff) * 0x100000000 + h1;
}

export function seedHash(model: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < model.length; i++) h = Math.imul(h ^ model.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export interface KvCacheOptions {
  /** Static mode: fixed number of blocks. KVCached mode: the engine's virtual cap. */
  numBlocks: number;
  blockBytes: number;
  prefixCaching: boolean;
  /** Cap on cached (free but reusable) blocks' tokens; undefined = unbounded. */
  maxCachedTokens?: number;
  /** KVCached: physical pool shared with neighbours. */
  pool?: PagePool;
}

export class KvCache {
  /** ref==0 blocks, LRU first (Map keeps insertion order). Static mode also holds never-used blocks. */
  private readonly free = new FreeList();
  private readonly cached = new Map<number, Block>();
  private nextId = 0;
  private inUse = 0;
  /** Blocks the engine holds memory for (in use + free-but-cached); KVCached only. */
  private held = 0;
  private mappedPages = 0;
  private cachedFree = 0;
  /** Pages mapped or unmapped since last read (step-time cost). */
  pageOps = 0;
  private maxCachedBlocks: number;

  constructor(readonly opts: KvCacheOptions) {
    this.maxCachedBlocks = !opts.prefixCaching
      ? 0
      : opts.maxCachedTokens === undefined
        ? Number.POSITIVE_INFINITY
        : Math.floor(opts.maxCachedTokens / BLOCK_SIZE);
    if (!opts.pool) {
      for (let i = 0; i < opts.numBlocks; i++) {
        this.free.push(newBlock(this.nextId++, 0));
      }
    }
  }

  get cachingEnabled(): boolean {
    return this.maxCachedBlocks > 0;
  }

  get numBlocks(): number {
    return this.opts.numBlocks;
  }

  get usedBlocks(): number {
    return this.inUse;
  }

  /** Blocks that could be handed out right now (free, evictable, or mappable from the pool). */
  availableBlocks(): number {
    const pool = this.opts.pool;
    if (!pool) return this.free.size;
    const headroom = Math.max(0, this.opts.numBlocks - this.held);
    const fromPool = Math.floor(
      ((pool.freePages + this.spareMappedPages()) * PAGE_BYTES) / this.opts.blockBytes,
    );
    return this.cachedFree + Math.min(headroom, fromPool);
  }

  /** vLLM's kv_cache_usage_perc: fraction of the blocks the engine could use that are in use. */
  usage(): number {
    const cap = this.inUse + this.availableBlocks();
    return cap === 0 ? 1 : this.inUse / cap;
  }

  /** Blocks whose prefix is cached for these chained hashes (stops at the first miss). */
  lookup(hashes: readonly number[]): Block[] {
    const hits: Block[] = [];
    if (!this.cachingEnabled) return hits;
    for (const h of hashes) {
      const b = this.cached.get(h);
      if (!b) break;
      hits.push(b);
    }
    return hits;
  }

  /** Take references on cached blocks found by lookup. */
  touch(blocks: readonly Block[]): void {
    for (const b of blocks) {
      if (b.ref === 0) {
        this.free.delete(b);
        this.cachedFree--;
        this.inUse++;
      }
      b.ref++;
    }
  }

  /** Allocate n fresh blocks, or none (returns undefined) when memory does not allow. */
  allocate(n: number): Block[] | undefined {
    if (n <= 0) return [];
    if (this.availableBlocks() < n) return undefined;
    const out: Block[] = [];
    for (let i = 0; i < n; i++) {
      const b = this.takeOne();
      if (!b) {
        this.release(out);
        return undefined;
      }
      out.push(b);
    }
    return out;
  }

  private spareMappedPages(): number {
    // Pages mapped but not fully used by held blocks (page granularity rounding).
    return this.mappedPages - Math.ceil((this.held * this.opts.blockBytes) / PAGE_BYTES);
  }

  private setHeld(held: number): boolean {
    const pool = this.opts.pool;
    if (!pool) return true;
    const pages = Math.ceil((held * this.opts.blockBytes) / PAGE_BYTES);
    const delta = pages - this.mappedPages;
    if (delta > 0 && !pool.tryTake(delta)) return false;
    if (delta < 0) pool.give(-delta);
    this.pageOps += Math.abs(delta);
    this.mappedPages = pages;
    this.held = held;
    return true;
  }

  private takeOne(): Block | undefined {
    const pool = this.opts.pool;
    if (pool && this.held < this.opts.numBlocks && this.setHeld(this.held + 1)) {
      this.inUse++;
      return newBlock(this.nextId++, 1);
    }
    // Reuse the least recently used free block, evicting its cached hash.
    const b = this.free.first();
    if (!b) return undefined;
    this.free.delete(b);
    if (b.hash !== undefined) {
      this.cached.delete(b.hash);
      b.hash = undefined;
      this.cachedFree--;
    }
    b.ref = 1;
    this.inUse++;
    return b;
  }

  /** Register a full block under its chained hash so later requests can reuse it. */
  register(b: Block, hash: number): void {
    if (!this.cachingEnabled || b.hash !== undefined) return;
    if (this.cached.has(hash)) return; // duplicate content: keep the first copy cached
    b.hash = hash;
    this.cached.set(hash, b);
  }

  /** Drop references; blocks reaching 0 go to the LRU tail in the given (reverse) order. */
  release(blocks: readonly Block[]): void {
    for (let i = blocks.length - 1; i >= 0; i--) {
      const b = blocks[i]!;
      b.ref--;
      if (b.ref > 0) continue;
      this.inUse--;
      if (b.hash !== undefined) {
        this.free.push(b);
        this.cachedFree++;
      } else if (this.opts.pool) {
        this.setHeld(this.held - 1);
      } else {
        this.free.push(b);
      }
    }
    this.trimCached();
  }

  private trimCached(): void {
    while (this.cachedFree > this.maxCachedBlocks) {
      let victim: Block | undefined;
      for (let b = this.free.first(); b; b = b.next) {
        if (b.hash !== undefined) {
          victim = b;
          break;
        }
      }
      if (!victim) break;
      this.cached.delete(victim.hash!);
      victim.hash = undefined;
      this.cachedFree--;
      if (this.opts.pool) {
        this.free.delete(victim);
        this.setHeld(this.held - 1);
      }
    }
  }

  /** Evict every cached block (vLLM's reset_prefix_cache). */
  reset(): void {
    const saved = this.maxCachedBlocks;
    this.maxCachedBlocks = 0;
    this.trimCached();
    this.maxCachedBlocks = saved;
  }
}

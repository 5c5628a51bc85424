import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { calibrate, newCore } from "../../services/engine-sim/calibration.ts";
import { coreConfigFromProfile, EngineCore } from "../../services/engine-sim/core.ts";
import { layoutKv } from "../../services/engine-sim/host.ts";
import { BLOCK_SIZE, KvCache, PAGE_BYTES, PagePool } from "../../services/engine-sim/kv.ts";
import {
  ENGINE_PROFILES,
  getProfile,
  profileNames,
  staticKvTokens,
} from "../../services/engine-sim/profiles.ts";
import { mean, simulate, syntheticPrompt } from "../../services/engine-sim/simulate.ts";

const P8 = ENGINE_PROFILES["llama-3.1-8b@h100"]!;

function smallCore(numBlocks: number, prefixCaching = true): EngineCore {
  return new EngineCore(
    coreConfigFromProfile(P8, {
      numBlocks,
      blockBytes: P8.kvBytesPerToken * BLOCK_SIZE,
      prefixCaching,
    }),
  );
}

/** One client, sequential requests with given prompts. */
function sequential(core: EngineCore, prompts: number[][], outputLen = 8) {
  return simulate([core], {
    clients: 1,
    next: (_c, seq) =>
      seq < prompts.length ? { engine: 0, promptTokens: prompts[seq]!, outputLen } : undefined,
  }).records;
}

describe("profiles", () => {
  it("has the required profiles with sources and sane constants", () => {
    for (const name of [
      "llama-3.1-8b@h100",
      "qwen2.5-7b@h100",
      "llama-3.3-70b-awq@h100",
      "llama-3.1-8b@l4",
    ]) {
      const p = getProfile(name);
      assert.ok(p, name);
      assert.equal(p.name, name);
      assert.ok(p.sources.length > 0);
      assert.ok(p.beta0 > 0 && p.beta1 > 0 && p.beta2 > 0 && p.kappa > 0);
      assert.ok(staticKvTokens(p) >= p.maxModelLen, `${name}: KV holds one max_model_len sequence`);
    }
    assert.equal(getProfile("toString"), undefined);
    assert.ok(profileNames().length >= 4);
  });

  it("llama-3.1-8b@h100 KV capacity is near the documented ≈470k tokens", () => {
    const t = staticKvTokens(P8);
    assert.ok(t > 0.9 * 470_000 && t < 1.1 * 470_000, String(t));
  });
});

describe("calibration", () => {
  it("llama-3.1-8b@h100 claims every ENGINE_MODEL.md reference point", () => {
    assert.deepEqual(
      P8.reference.map((r) => `${r.metric}@${r.concurrency}`),
      ["itl@1", "itl@16", "itl@64", "ttft@1", "prefill-tps@64"],
    );
  });
  for (const p of Object.values(ENGINE_PROFILES).filter((p) => p.reference.length > 0)) {
    it(`${p.name} lands within ±20% of every reference point it claims`, () => {
      for (const r of calibrate(p))
        assert.ok(
          r.ratio >= 0.8 && r.ratio <= 1.2,
          `${r.point.note}: emulated ${r.emulated} vs ${r.point.value} (ratio ${r.ratio.toFixed(3)})`,
        );
    });
  }
});

describe("scheduler model properties", () => {
  it("is deterministic", () => {
    const run = () =>
      simulate([newCore(P8, true)], {
        clients: 8,
        next: (c, s) =>
          s < 3
            ? { engine: 0, promptTokens: syntheticPrompt(300 + c * 10, c + s), outputLen: 20 + s }
            : undefined,
      }).records;
    assert.deepEqual(run(), run());
  });

  it("a prefix hit lowers TTFT", () => {
    const a = syntheticPrompt(3000, 1);
    const b = syntheticPrompt(3000, 2);
    const [first, hit] = sequential(smallCore(10_000), [a, a]);
    const [, miss] = sequential(smallCore(10_000), [a, b]);
    const [, off] = sequential(smallCore(10_000, false), [a, a]);
    assert.ok(hit!.ttft < miss!.ttft / 2, `hit ${hit!.ttft} vs miss ${miss!.ttft}`);
    assert.ok(hit!.ttft < first!.ttft);
    assert.ok(Math.abs(off!.ttft - miss!.ttft) < 1e-9, "caching off: no gain");
  });

  it("at least one prompt token is recomputed on a full hit", () => {
    const core = smallCore(1000);
    const a = syntheticPrompt(64, 3);
    sequential(core, [a, a]);
    assert.equal(core.counters.prefixQueries, 128);
    assert.equal(core.counters.prefixHits, 48); // 3 of 4 blocks: the last is recomputed
  });

  it("longer prompts raise TTFT", () => {
    fc.assert(
      fc.property(fc.integer({ min: 16, max: 4000 }), fc.integer({ min: 1, max: 4000 }), (a, d) => {
        const [short] = sequential(newCore(P8), [syntheticPrompt(a, 1)]);
        const [long] = sequential(newCore(P8), [syntheticPrompt(a + d, 1)]);
        return long!.ttft > short!.ttft;
      }),
      { numRuns: 25 },
    );
  });

  it("larger batches raise inter-token latency", () => {
    const itlAt = (c: number) =>
      mean(
        simulate([newCore(P8)], {
          clients: c,
          next: (cl, s) =>
            s < 2
              ? { engine: 0, promptTokens: syntheticPrompt(512, cl * 10 + s), outputLen: 128 }
              : undefined,
        }).records.map((r) => r.itl),
      );
    const i1 = itlAt(1);
    const i16 = itlAt(16);
    const i64 = itlAt(64);
    assert.ok(i1 < i16 && i16 < i64, `${i1} ${i16} ${i64}`);
  });

  it("KV exhaustion causes preemptions, and every request still completes", () => {
    const core = smallCore(120); // 1920 tokens of KV
    const res = simulate([core], {
      clients: 8,
      next: (c, s) =>
        s < 2
          ? { engine: 0, promptTokens: syntheticPrompt(300, c * 7 + s), outputLen: 200 }
          : undefined,
    });
    assert.ok(core.counters.preemptions > 0);
    assert.equal(res.records.length, 16);
    assert.equal(core.kv.usedBlocks, 0);
    const roomy = newCore(P8);
    simulate([roomy], {
      clients: 8,
      next: (c, s) =>
        s < 2
          ? { engine: 0, promptTokens: syntheticPrompt(300, c * 7 + s), outputLen: 200 }
          : undefined,
    });
    assert.equal(roomy.counters.preemptions, 0);
  });

  it("respects the token budget and sequence cap", () => {
    const core = new EngineCore(
      coreConfigFromProfile(
        P8,
        { numBlocks: 100_000, blockBytes: P8.kvBytesPerToken * 16, prefixCaching: false },
        { maxNumSeqs: 4, maxNumBatchedTokens: 512 },
      ),
    );
    for (let i = 0; i < 10; i++)
      core.addRequest({
        id: `r${i}`,
        promptTokens: syntheticPrompt(1000, i),
        outputLen: 5,
        finishReason: "length",
        arrival: 0,
      });
    let t = 1;
    for (let k = 0; k < 200 && core.hasWork(); k++) {
      const r = core.step(t);
      if (!r) break;
      assert.ok(r.prefillTokens + r.decodeTokens <= 512);
      assert.ok(core.numRunning <= 4);
      t = r.end;
    }
    assert.equal(core.counters.success.length, 10);
  });
});

describe("KVCached mode", () => {
  const gpu = (name: string, kvcached: boolean) => ({
    name,
    host: "h",
    model: name,
    gpus: [0],
    port: 0,
    kvcached,
    prefixCaching: !kvcached,
    // Packed static placement: each engine gets a fixed slice of the same GPU.
    ...(kvcached ? {} : { gpuMemoryUtilization: 0.45 }),
    emulator: { profile: "llama-3.1-8b@h100", ...(kvcached ? { maxCachedTokens: 0 } : {}) },
  });
  const pair = (kvcached: boolean) => {
    const lay = layoutKv([gpu("a", kvcached), gpu("b", kvcached)]);
    return ["a", "b"].map((n) => {
      const l = lay.get(n)!;
      return new EngineCore(coreConfigFromProfile(P8, l.kv, { model: n }));
    });
  };
  const burst = (n: number, len: number) =>
    Array.from({ length: n }, (_, i) => ({
      time: i * 0.001,
      request: { engine: 0, promptTokens: syntheticPrompt(len, i), outputLen: 400 },
    }));

  it("shares one physical pool: a burst on one engine raises its neighbour's usage and limits its capacity", () => {
    const [a, b] = pair(true);
    // b runs one small request throughout.
    b!.addRequest({
      id: "b0",
      promptTokens: syntheticPrompt(2000, 99),
      outputLen: 5000,
      finishReason: "length",
      arrival: 0,
    });
    const usageBefore = b!.kvUsage;
    const capBefore = b!.kv.availableBlocks();
    let maxB = usageBefore;
    let minCapB = capBefore;
    simulate([a!, b!], {
      arrivals: burst(120, 6000),
      until: 10,
      onStep: () => {
        maxB = Math.max(maxB, b!.kvUsage);
        minCapB = Math.min(minCapB, b!.kv.availableBlocks());
      },
    });
    assert.ok(maxB > usageBefore * 2, `neighbour usage ${usageBefore} → ${maxB}`);
    assert.ok(minCapB < capBefore / 2, `neighbour capacity ${capBefore} → ${minCapB}`);
    assert.equal(b!.kv.numBlocks, a!.kv.numBlocks, "each may grow to the whole pool");
  });

  it("static partitions do not move with the neighbour", () => {
    const [a, b] = pair(false);
    b!.addRequest({
      id: "b0",
      promptTokens: syntheticPrompt(2000, 99),
      outputLen: 5000,
      finishReason: "length",
      arrival: 0,
    });
    const samples: number[] = [];
    const caps: number[] = [];
    simulate([a!, b!], {
      arrivals: burst(120, 6000),
      until: 3,
      onStep: (e) => {
        if (e === 1) {
          samples.push(b!.kvUsage * b!.kv.numBlocks - b!.kv.usedBlocks);
          caps.push(b!.kv.usedBlocks + b!.kv.availableBlocks());
        }
      },
    });
    assert.ok(caps.every((c) => c === b!.kv.numBlocks));
    assert.ok(
      samples.every((s) => Math.abs(s) < 1e-6),
      "usage = own used / own partition",
    );
  });

  it("lets a burst borrow an idle neighbour's memory (fewer preemptions than a static slice)", () => {
    const run = (kvcached: boolean) => {
      const [a, b] = pair(kvcached);
      const res = simulate([a!, b!], { arrivals: burst(150, 6000) });
      return { pre: a!.counters.preemptions, ttft: mean(res.records.map((r) => r.ttft)) };
    };
    const st = run(false);
    const kc = run(true);
    assert.ok(kc.ttft < st.ttft, `kvcached TTFT ${kc.ttft} vs static ${st.ttft}`);
    assert.ok(kc.pre <= st.pre);
  });

  it("one model per GPU (the seed layout): KVCached changes little", () => {
    const run = (kvcached: boolean) => {
      const lay = layoutKv([
        { ...gpu("a", kvcached), gpus: [0], gpuMemoryUtilization: undefined },
        { ...gpu("b", kvcached), gpus: [1], gpuMemoryUtilization: undefined },
      ]);
      const cores = ["a", "b"].map(
        (n) => new EngineCore(coreConfigFromProfile(P8, lay.get(n)!.kv, { model: n })),
      );
      const res = simulate(cores, {
        clients: 32,
        next: (c, s) =>
          s < 4
            ? { engine: c % 2, promptTokens: syntheticPrompt(1500, c * 10 + s), outputLen: 200 }
            : undefined,
      });
      return mean(res.records.map((r) => r.ttft));
    };
    const st = run(false);
    const kc = run(true);
    assert.ok(Math.abs(kc - st) / st < 0.1, `static ${st} vs kvcached ${kc}`);
  });

  it("page pool accounting never exceeds the physical pool (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 1, max: 40 })),
          {
            maxLength: 200,
          },
        ),
        (ops) => {
          const pool = new PagePool(100);
          const caches = [0, 1].map(
            () =>
              new KvCache({
                numBlocks: 150,
                blockBytes: PAGE_BYTES / 2,
                prefixCaching: true,
                maxCachedTokens: 320,
                pool,
              }),
          );
          const held: ReturnType<KvCache["allocate"]>[][] = [[], []];
          let h = 1;
          for (const [alloc, which, n] of ops) {
            const c = caches[which]!;
            if (alloc) {
              const got = c.allocate(n);
              if (got) {
                for (const b of got) c.register(b, h++);
                held[which]!.push(got);
              }
            } else {
              const got = held[which]!.shift();
              if (got) c.release(got);
            }
            if (pool.usedPages > pool.totalPages || pool.usedPages < 0) return false;
            for (const k of caches) if (k.usage() < 0 || k.usage() > 1) return false;
          }
          for (let w = 0; w < 2; w++) for (const g of held[w]!) caches[w]!.release(g!);
          caches.forEach((c) => {
            c.reset();
          });
          return pool.usedPages === 0;
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("static KV cache (property)", () => {
  it("blocks are conserved and cached prefixes are found until evicted", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 100 }), (sizes) => {
        const kv = new KvCache({ numBlocks: 64, blockBytes: 1, prefixCaching: true });
        const live: NonNullable<ReturnType<KvCache["allocate"]>>[] = [];
        let h = 1;
        for (const n of sizes) {
          let got = kv.allocate(n);
          if (!got && live.length > 0) {
            kv.release(live.shift()!);
            got = kv.allocate(n);
          }
          if (got) {
            for (const b of got) kv.register(b, h++);
            live.push(got);
          }
          if (kv.usedBlocks + kv.availableBlocks() !== 64) return false;
        }
        for (const g of live) kv.release(g);
        return kv.usedBlocks === 0 && kv.availableBlocks() === 64;
      }),
      { numRuns: 100 },
    );
  });
});

describe("layoutKv", () => {
  const eng = (name: string, over: object = {}) => ({
    name,
    host: "h",
    model: name,
    gpus: [0],
    port: 0,
    kvcached: false,
    prefixCaching: true,
    maxModelLen: 8192,
    emulator: { profile: "llama-3.1-8b@h100" },
    ...over,
  });
  it("static slices follow gpu_memory_utilization and flag over-commit", () => {
    const ok = layoutKv(["a", "b", "c", "d"].map((n) => eng(n, { gpuMemoryUtilization: 0.225 })));
    const a = ok.get("a")!;
    assert.equal(a.warnings.length, 0);
    assert.equal(a.kv.numBlocks, Math.floor(staticKvTokens(P8, 0.225) / BLOCK_SIZE));
    const over = layoutKv(["a", "b"].map((n) => eng(n)));
    assert.match(over.get("a")!.warnings.join(), /summing to 1\.80 > 1/);
  });
  it("clamps max_model_len to the KV capacity with a warning", () => {
    const l = layoutKv([eng("a", { gpuMemoryUtilization: 0.2, maxModelLen: 131072 })]).get("a")!;
    assert.ok(l.maxModelLen < 131072);
    assert.match(l.warnings.join(), /clamped/);
  });
  it("KVCached engines on one GPU share a pool sized after every engine's weights", () => {
    const l = layoutKv([
      eng("a", { kvcached: true }),
      eng("b", { kvcached: true }),
      eng("c", { kvcached: true, gpus: [1] }),
    ]);
    assert.equal(l.get("a")!.kv.pool, l.get("b")!.kv.pool);
    assert.notEqual(l.get("a")!.kv.pool, l.get("c")!.kv.pool);
    assert.ok(l.get("a")!.kv.pool!.totalPages < l.get("c")!.kv.pool!.totalPages);
    assert.equal(l.get("a")!.kv.maxCachedTokens, 16_000);
  });
});

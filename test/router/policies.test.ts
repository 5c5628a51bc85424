import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { seededRandom } from "../../lib/random.ts";
import {
  blockHashes,
  buildHashRing,
  effectiveLoads,
  kvAwareScores,
  overLoadGate,
  PrefixIndex,
  pickKvAware,
  pickLeastBusy,
  pickPowerOfTwo,
  pickPrefixAware,
  pickRoundRobin,
  pickSession,
  promptText,
  type ReplicaView,
  ringOwner,
} from "../../services/router/index.ts";

const view = (
  index: number,
  load: number | undefined,
  extra: Partial<ReplicaView> = {},
): ReplicaView => ({
  index,
  healthy: true,
  metrics: load === undefined ? undefined : { running: load, waiting: 0, kvUsage: undefined },
  dispatchedSincePoll: 0,
  inFlight: 0,
  ...extra,
});

const arbReplicas = fc.array(
  fc.record({
    healthy: fc.boolean(),
    load: fc.option(fc.nat(50), { nil: undefined }),
    dispatched: fc.nat(5),
    inFlight: fc.nat(20),
  }),
  { minLength: 1, maxLength: 8 },
);
const toViews = (xs: { healthy: boolean; load?: number; dispatched: number; inFlight: number }[]) =>
  xs.map((x, i) =>
    view(i, x.load, {
      healthy: x.healthy,
      dispatchedSincePoll: x.dispatched,
      inFlight: x.inFlight,
    }),
  );

describe("effectiveLoads (unknown is not idle)", () => {
  it("adds dispatched-since-poll to running+waiting", () => {
    const v = [view(0, 3, { dispatchedSincePoll: 2 }), view(1, 1)];
    v[1]!.metrics!.waiting = 4;
    assert.deepEqual(effectiveLoads(v), [5, 5]);
  });
  it("subtracts the router's own requests completed since the poll, never below 0", () => {
    const v = [
      view(0, 3, { dispatchedSincePoll: 1, completedSincePoll: 2 }),
      view(1, 1, { completedSincePoll: 5 }),
    ];
    assert.deepEqual(effectiveLoads(v), [2, 0]);
  });
  it("scores an unknown replica at the known mean, or its own in-flight if higher", () => {
    assert.deepEqual(effectiveLoads([view(0, 2), view(1, 6), view(2, undefined)]), [2, 6, 4]);
    assert.deepEqual(
      effectiveLoads([view(0, 2), view(1, 6), view(2, undefined, { inFlight: 9 })]),
      [2, 6, 9],
    );
  });
  it("falls back to the router's own in-flight when nothing is known", () => {
    assert.deepEqual(
      effectiveLoads([view(0, undefined, { inFlight: 3 }), view(1, undefined, { inFlight: 1 })]),
      [3, 1],
    );
  });
  it("never lets an unknown replica beat a known idle one", () => {
    const rng = seededRandom(1);
    for (let i = 0; i < 200; i++)
      assert.equal(pickLeastBusy([view(0, 0), view(1, 10), view(2, undefined)], rng), 0);
  });
});

describe("round-robin", () => {
  it("cycles over healthy replicas only", () => {
    const v = [view(0, 0), view(1, 0, { healthy: false }), view(2, 0)];
    let cursor = 0;
    const picks: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = pickRoundRobin(v, cursor);
      picks.push(r.pick);
      cursor = r.cursor;
    }
    assert.deepEqual(picks, [0, 2, 0, 2]);
  });
  it("is fair: every healthy replica gets n/k picks (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), fc.nat(7), (hs, c0) => {
        const v = hs.map((h, i) => view(i, 0, { healthy: h }));
        const healthy = hs.filter(Boolean).length;
        let cursor = c0 % hs.length;
        const counts = new Array<number>(hs.length).fill(0);
        for (let i = 0; i < healthy * 5; i++) {
          const r = pickRoundRobin(v, cursor);
          if (healthy === 0) return r.pick === -1;
          counts[r.pick]!++;
          cursor = r.cursor;
        }
        return counts.every((c, i) => (hs[i] ? c === 5 : c === 0));
      }),
    );
  });
});

describe("power-of-two", () => {
  const shares = (v: ReplicaView[], draws: number, seed = 7) => {
    const rng = seededRandom(seed);
    const counts = new Array<number>(v.length).fill(0);
    for (let i = 0; i < draws; i++) counts[pickPowerOfTwo(v, rng)]!++;
    return counts.map((c) => c / draws);
  };
  it("picks each replica with the chance that it is the lighter of a random pair", () => {
    // Loads 0 < 1 < 2 < 3: replica i wins the pairs with every heavier one, (3 − i) of 6.
    const got = shares([view(0, 0), view(1, 1), view(2, 2), view(3, 3)], 60_000);
    const want = [3 / 6, 2 / 6, 1 / 6, 0];
    for (const [i, g] of got.entries())
      assert.ok(Math.abs(g - want[i]!) < 0.01, `replica ${i}: ${g} vs ${want[i]}`);
    assert.equal(got[3], 0, "the busiest replica never wins while two are healthy");
  });
  it("is uniform over equally loaded replicas, and skips unhealthy ones", () => {
    const got = shares(
      [view(0, 2), view(1, 2), view(2, 2, { healthy: false }), view(3, 2)],
      60_000,
    );
    assert.equal(got[2], 0);
    for (const i of [0, 1, 3])
      assert.ok(Math.abs(got[i]! - 1 / 3) < 0.01, `replica ${i}: ${got[i]}`);
  });
  it("one healthy replica is the pick; none is -1 (property: always a healthy one)", () => {
    assert.equal(pickPowerOfTwo([view(0, 0, { healthy: false }), view(1, 9)], seededRandom(1)), 1);
    assert.equal(pickPowerOfTwo([view(0, 0, { healthy: false })], seededRandom(1)), -1);
    fc.assert(
      fc.property(arbReplicas, fc.integer(), (xs, seed) => {
        const v = toViews(xs);
        const pick = pickPowerOfTwo(v, seededRandom(seed));
        return v.some((r) => r.healthy) ? v[pick]?.healthy === true : pick === -1;
      }),
    );
  });
});

describe("least-busy", () => {
  it("picks a healthy replica within +1 of the minimum load (property)", () => {
    fc.assert(
      fc.property(arbReplicas, fc.integer(), (xs, seed) => {
        const v = toViews(xs);
        const loads = effectiveLoads(v);
        const pick = pickLeastBusy(v, seededRandom(seed));
        const healthy = v.filter((r) => r.healthy);
        if (healthy.length === 0) return pick === -1;
        const min = Math.min(...healthy.map((r) => loads[r.index]!));
        return v[pick]!.healthy && loads[pick]! <= min + 1;
      }),
    );
  });
  it("breaks ties randomly among replicas within +1", () => {
    const v = [view(0, 3), view(1, 4), view(2, 9)];
    const seen = new Set<number>();
    const rng = seededRandom(7);
    for (let i = 0; i < 100; i++) seen.add(pickLeastBusy(v, rng));
    assert.deepEqual([...seen].sort(), [0, 1]);
  });
  it("spreads a burst within one poll interval via dispatched-since-poll", () => {
    const v = [view(0, 0), view(1, 0), view(2, 0), view(3, 0)];
    const rng = seededRandom(3);
    for (let i = 0; i < 40; i++) v[pickLeastBusy(v, rng)]!.dispatchedSincePoll++;
    const d = v.map((r) => r.dispatchedSincePoll);
    assert.ok(Math.max(...d) - Math.min(...d) <= 2, `uneven burst ${d}`);
  });
});

describe("prefix-aware", () => {
  const opts = { loadGateThreshold: 4 };
  it("routes to the longest matching prefix", () => {
    const v = [view(0, 1), view(1, 1), view(2, 1)];
    assert.deepEqual(pickPrefixAware(v, [2, 5, 0], 8, opts, seededRandom(1)), {
      pick: 1,
      reason: "affinity",
    });
  });
  it("falls back to least-busy over the load gate", () => {
    const v = [view(0, 1), view(1, 20), view(2, 1)];
    const r = pickPrefixAware(v, [0, 5, 0], 8, opts, seededRandom(1));
    assert.equal(r.reason, "load-gate");
    assert.notEqual(r.pick, 1);
  });
  it("never picks an unhealthy replica, and keeps affinity below the gate (property)", () => {
    fc.assert(
      fc.property(
        arbReplicas,
        fc.array(fc.nat(10), { minLength: 8, maxLength: 8 }),
        fc.integer(),
        (xs, match, seed) => {
          const v = toViews(xs);
          const { pick, reason } = pickPrefixAware(v, match, 10, opts, seededRandom(seed));
          if (!v.some((r) => r.healthy)) return pick === -1;
          if (!v[pick]!.healthy) return false;
          if (reason === "affinity")
            return (
              match[pick]! >= 5 && !overLoadGate(v, effectiveLoads(v), pick, opts.loadGateThreshold)
            );
          return true;
        },
      ),
    );
  });
  it("ignores weak matches (e.g. only a shared system prompt): routes by load", () => {
    const v = [view(0, 6), view(1, 0), view(2, 0)];
    const r = pickPrefixAware(v, [3, 0, 0], 10, opts, seededRandom(1));
    assert.equal(r.reason, "no-affinity");
    assert.notEqual(r.pick, 0);
  });
  it("hashes prompt blocks as a chain and finds the longest shared prefix", () => {
    const idx = new PrefixIndex(1000);
    const sys = "S".repeat(256);
    const a = blockHashes(
      `${sys}question one, long enough to fill a block!!!!!!!!!!!!!!!!!!!`,
      64,
      "m",
    );
    const b = blockHashes(`${sys}question two`, 64, "m");
    idx.record(a, 2);
    const m = idx.match(b, 3);
    assert.deepEqual(m, [0, 0, 4]);
    // Another model's identical prompt does not match (seeded by model).
    assert.deepEqual(idx.match(blockHashes(`${sys}x`, 64, "other"), 3), [0, 0, 0]);
  });
  it("bounds the index (LRU)", () => {
    const idx = new PrefixIndex(10);
    for (let i = 0; i < 100; i++) idx.record([i], 0);
    assert.equal(idx.size, 10);
    assert.deepEqual(idx.match([99], 1), [1]);
    assert.deepEqual(idx.match([0], 1), [0]);
  });
  it("extracts prompt text from chat and completions bodies", () => {
    assert.equal(
      promptText({
        messages: [
          { role: "system", content: "a" },
          { role: "user", content: [{ type: "text", text: "b" }] },
        ],
      }),
      "system:a\nuser:b\n",
    );
    assert.equal(promptText({ prompt: "xyz" }), "xyz");
    assert.equal(promptText({ prompt: [1, 2, 3] }), "1,2,3");
    assert.equal(promptText({}), "");
  });
});

describe("session (consistent hashing)", () => {
  const ids = ["m-0", "m-1", "m-2", "m-3"];
  const ring = buildHashRing(ids);
  it("is sticky and moves only the removed replica's keys (property)", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.nat(3), (key, down) => {
        const owner = ringOwner(ring, key);
        const again = ringOwner(ring, key);
        const without = ringOwner(ring, key, (i) => i !== down);
        return owner === again && (owner === down ? without !== down : without === owner);
      }),
    );
  });
  it("spreads keys roughly evenly", () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[ringOwner(ring, `user-${i}`)]!++;
    for (const c of counts) assert.ok(c > 500 && c < 1600, `uneven ring ${counts}`);
  });
  it("keeps the owner under the gate, least-busy over it or without a key", () => {
    const opts = { loadGateThreshold: 4 };
    const v = [view(0, 1), view(1, 2), view(2, 1)];
    assert.deepEqual(pickSession(v, 1, opts, seededRandom(1)), { pick: 1, reason: "affinity" });
    v[1]!.metrics!.running = 30;
    assert.equal(pickSession(v, 1, opts, seededRandom(1)).reason, "load-gate");
    assert.equal(pickSession(v, -1, opts, seededRandom(1)).reason, "no-affinity");
  });
});

describe("kv-aware", () => {
  const w = { queue: 1, kvUsage: 1, prefix: 1 };
  it("prefers low queue, low KV usage and prefix matches", () => {
    const v = [view(0, 10), view(1, 2), view(2, 2)];
    v[1]!.metrics!.kvUsage = 0.9;
    v[2]!.metrics!.kvUsage = 0.1;
    assert.equal(pickKvAware(v, [0, 0, 0], 4, w, seededRandom(1)), 2);
    // A full prefix match outweighs a moderate queue difference.
    v[0]!.metrics!.running = 3;
    v[0]!.metrics!.kvUsage = 0.1;
    assert.equal(pickKvAware(v, [4, 0, 0], 4, w, seededRandom(1)), 0);
  });
  it("picks the healthy minimum score (property)", () => {
    fc.assert(
      fc.property(
        arbReplicas,
        fc.array(fc.nat(4), { minLength: 8, maxLength: 8 }),
        fc.integer(),
        (xs, match, seed) => {
          const v = toViews(xs);
          const pick = pickKvAware(v, match, 4, w, seededRandom(seed));
          if (!v.some((r) => r.healthy)) return pick === -1;
          const s = kvAwareScores(v, match, 4, w);
          const min = Math.min(...v.filter((r) => r.healthy).map((r) => s[r.index]!));
          return v[pick]!.healthy && s[pick]! <= min + 1e-9;
        },
      ),
    );
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { seededRandom } from "../../lib/random.ts";
import { type ChoiceContext, chooseReplica } from "../../services/router/choose.ts";
import { ROUTER_POLICIES } from "../../services/router/config.ts";
import {
  buildHashRing,
  DEFAULT_POLICY_OPTIONS,
  type ReplicaView,
  ringOwner,
} from "../../services/router/index.ts";
import type { RouterPolicy } from "../../stacks/plan-types.ts";

const view = (index: number, load: number | undefined, healthy = true): ReplicaView => ({
  index,
  healthy,
  metrics: load === undefined ? undefined : { running: load, waiting: 0, kvUsage: undefined },
  dispatchedSincePoll: 0,
  inFlight: 0,
});

const ring = buildHashRing(["m-0", "m-1", "m-2"]);
const ctx = (policy: RouterPolicy, over: Partial<ChoiceContext> = {}): ChoiceContext => ({
  policy,
  options: DEFAULT_POLICY_OPTIONS,
  rrCursor: 0,
  ring,
  rng: seededRandom(7),
  ...over,
});

describe("chooseReplica", () => {
  it("round-robin returns the next cursor and skips unhealthy replicas", () => {
    const v = [view(0, 0), view(1, 0, false), view(2, 0)];
    const picks: number[] = [];
    let rrCursor = 0;
    for (let i = 0; i < 4; i++) {
      const c = chooseReplica(ctx("round-robin", { rrCursor }), v, {});
      picks.push(c.pick);
      rrCursor = c.rrCursor;
    }
    assert.deepEqual(picks, [0, 2, 0, 2]);
  });

  it("least-busy picks the least loaded replica and leaves the cursor alone", () => {
    const c = chooseReplica(ctx("least-busy", { rrCursor: 5 }), [view(0, 9), view(1, 0)], {});
    assert.deepEqual(c, { pick: 1, rrCursor: 5 });
  });

  it("power-of-two takes the lighter of two replicas: with two, always the idle one", () => {
    for (let seed = 0; seed < 20; seed++) {
      const c = chooseReplica(
        ctx("power-of-two", { rng: seededRandom(seed) }),
        [view(0, 9), view(1, 0)],
        {},
      );
      assert.deepEqual(c, { pick: 1, rrCursor: 0 });
    }
  });

  it("prefix-aware follows the longest prefix match the request carries", () => {
    const v = [view(0, 1), view(1, 1), view(2, 1)];
    const req = { prefixMatch: [0, 8, 2], prefixBlocks: 10 };
    assert.equal(chooseReplica(ctx("prefix-aware"), v, req).pick, 1);
    // Without a match it routes by load.
    const busy = [view(0, 9), view(1, 9), view(2, 0)];
    assert.equal(chooseReplica(ctx("prefix-aware"), busy, { prefixBlocks: 10 }).pick, 2);
  });

  it("kv-aware weighs the prefix match against the queue", () => {
    const v = [view(0, 2), view(1, 2)];
    assert.equal(
      chooseReplica(ctx("kv-aware"), v, { prefixMatch: [0, 4], prefixBlocks: 4 }).pick,
      1,
    );
  });

  it("session sends a key to its ring owner, and elsewhere when the owner is down", () => {
    const v = [view(0, 0), view(1, 0), view(2, 0)];
    const owner = ringOwner(ring, "alice");
    assert.equal(chooseReplica(ctx("session"), v, { sessionKey: "alice" }).pick, owner);
    v[owner] = view(owner, 0, false);
    const moved = chooseReplica(ctx("session"), v, { sessionKey: "alice" }).pick;
    assert.notEqual(moved, owner);
    assert.ok(v[moved]!.healthy);
  });

  it("answers -1 when no replica is healthy, for every policy", () => {
    const v = [view(0, 0, false), view(1, 0, false)];
    for (const p of ROUTER_POLICIES)
      assert.equal(chooseReplica(ctx(p), v, { sessionKey: "k" }).pick, -1, p);
  });

  it("is pure: same inputs, same choice; the snapshot is not modified (property)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<RouterPolicy>(...ROUTER_POLICIES),
        fc.array(fc.record({ load: fc.option(fc.nat(30)), healthy: fc.boolean() }), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.array(fc.nat(10), { minLength: 3, maxLength: 3 }),
        fc.string(),
        fc.integer(),
        (policy, xs, match, key, seed) => {
          const v = xs.map((x, i) => view(i, x.load ?? undefined, x.healthy));
          const before = JSON.stringify(v);
          const req = { sessionKey: key, prefixMatch: match, prefixBlocks: 10 };
          const a = chooseReplica(ctx(policy, { rng: seededRandom(seed) }), v, req);
          const b = chooseReplica(ctx(policy, { rng: seededRandom(seed) }), v, req);
          assert.deepEqual(a, b);
          assert.equal(JSON.stringify(v), before);
          if (a.pick >= 0) assert.ok(v[a.pick]!.healthy);
          else assert.ok(!v.some((r) => r.healthy));
        },
      ),
    );
  });
});

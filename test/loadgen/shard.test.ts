import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createRng } from "../../lib/random.ts";
import { nowEpochNs } from "../../loadgen/client.ts";
import {
  type LoadPointResult,
  type RunLoadPointOptions,
  runLeadShard,
  runLoadPoint,
  runLoadShard,
} from "../../loadgen/run-point.ts";
import {
  mergeShards,
  ownedOf,
  type ShardOutcome,
  shardFromWire,
  shardToWire,
  shareOf,
  slotsOf,
} from "../../loadgen/shard.ts";
import type { LoadPoint, WorkloadPlan } from "../../stacks/plan-types.ts";
import { type SseServer, startSseServer } from "../../testkit/sse-server.ts";

describe("shards of one schedule (pure)", () => {
  it("every request, slot and element goes to exactly one shard", () => {
    const rng = createRng(7);
    for (let t = 0; t < 300; t++) {
      const count = 1 + rng.int(8);
      const total = rng.int(50);
      const conc = count + rng.int(40);
      const shards = Array.from({ length: count }, (_, index) => ({ index, count }));
      assert.equal(
        shards.reduce((a, s) => a + shareOf(total, s), 0),
        total,
        `${total} over ${count}`,
      );
      const slots = shards.map((s) => slotsOf(conc, s));
      assert.equal(
        slots.reduce((a, b) => a + b, 0),
        conc,
      );
      assert.ok(Math.max(...slots) - Math.min(...slots) <= 1, "slots split evenly");
      const xs = Array.from({ length: total }, (_, i) => i);
      const owned = shards.flatMap((s) => ownedOf(xs, s));
      assert.deepEqual(
        owned.sort((a, b) => a - b),
        xs,
      );
      for (const s of shards) assert.equal(ownedOf(xs, s).length, shareOf(total, s));
    }
    assert.equal(
      shareOf(Number.POSITIVE_INFINITY, { index: 1, count: 3 }),
      Number.POSITIVE_INFINITY,
    );
  });

  const rec = (sent: bigint, model = "m") => ({
    index: 9,
    model,
    status: "ok" as const,
    http_status: 200,
    intended_ns: sent,
    eligible_ns: sent,
    sent_ns: sent,
    end_ns: sent + 10n,
    lag_ns: 0,
    schedule_delay_ns: 0,
    chunks: 1,
  });
  const raw = (t: bigint) => ({
    timestamp: t,
    payload: `p${t}`,
    responseTimestamps: [t + 5n],
    responses: ['{"x":1}'],
  });
  const metric = (t: bigint) => ({
    startNs: t,
    endNs: t + 10n,
    latencyNs: 10,
    ttftNs: 5,
    osl: 2,
    isl: 3,
    outputText: "ab",
    responseCount: 1,
  });
  const part = (shard: number, ts: bigint[], extra: Partial<ShardOutcome> = {}): ShardOutcome => ({
    shard,
    measured: {
      records: ts.map((t) => rec(t)),
      raws: ts.map(raw),
      metrics: ts.map(metric),
      errorsByKind: { "HTTP 500": shard },
      usage: { requests: ts.length, prompt: 3 * ts.length, completion: 2 * ts.length },
    },
    payloads: ts.map((t) => `p${t}`),
    startEpochNs: 100n + BigInt(shard),
    ...extra,
  });

  it("merging puts records in send order, re-indexed, with their payloads, raws beside metrics", () => {
    const m = mergeShards([
      part(0, [110n, 130n, 150n]),
      part(1, [120n, 140n], { aborted: "cancelled", targetRate: 4 }),
    ]);
    assert.deepEqual(
      m.measured.records.map((r) => [r.index, r.sent_ns]),
      [
        [0, 110n],
        [1, 120n],
        [2, 130n],
        [3, 140n],
        [4, 150n],
      ],
    );
    assert.deepEqual(m.payloads, ["p110", "p120", "p130", "p140", "p150"]);
    assert.deepEqual(
      m.measured.raws.map((r) => r.timestamp),
      m.measured.metrics.map((x) => x.startNs),
    );
    assert.deepEqual(m.measured.errorsByKind, { "HTTP 500": 1 });
    assert.deepEqual(m.measured.usage, { requests: 5, prompt: 15, completion: 10 });
    assert.equal(m.startEpochNs, 100n);
    assert.equal(m.aborted, "cancelled");
    assert.equal(m.targetRate, 4);
  });

  it("the wire form round-trips through JSON exactly and refuses a malformed outcome", () => {
    const o = part(1, [1_700_000_000_000_000_123n, 1_700_000_000_000_000_456n], {
      targetRate: 2.5,
    });
    const back = shardFromWire(JSON.parse(JSON.stringify(shardToWire(o))));
    assert.deepEqual(back, o);
    assert.throws(() => shardFromWire({ shard: 0 }), /not an outcome/);
    const bad = JSON.parse(JSON.stringify(shardToWire(o)));
    bad.measured.records[0].sent_ns = "12.5";
    assert.throws(() => shardFromWire(bad), /record sent_ns is not an integer string/);
  });
});

describe("a point split over shards measures what one process does", () => {
  let srv: SseServer;
  let dir: string;
  before(async () => {
    // A backend with a fixed per-token time, so both runs see the same service.
    srv = await startSseServer({ tokenDelayMs: 3 });
    dir = mkdtempSync(join(tmpdir(), "ib-shard-"));
  });
  after(async () => {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const workload: WorkloadPlan = {
    dataset: { kind: "synthetic", inputTokensMean: 24, inputTokensStddev: 0, numDatasetEntries: 7 },
    endpointType: "chat",
    streaming: true,
    outputTokensMean: 6,
    outputTokensStddev: 0,
    ignoreEos: false,
    models: ["llama", "qwen"],
    requestCount: 48,
  };
  const opts = (name: string, loadPoint: LoadPoint, warmupRequests = 4): RunLoadPointOptions => ({
    url: srv.url,
    models: ["llama", "qwen"],
    workload,
    loadPoint,
    seed: 11,
    warmupRequests,
    artifactDir: join(dir, name),
    progress: false,
  });

  /** N shards in this process; the common start is set once all are warm (a barrier). */
  async function sharded(
    name: string,
    lp: LoadPoint,
    n: number,
    warmup?: number,
  ): Promise<LoadPointResult> {
    let warm = 0;
    let release!: (t: bigint) => void;
    const start = new Promise<bigint>((r) => {
      release = r;
    });
    const spec = (index: number) => ({
      index,
      count: n,
      startAt: () => {
        if (++warm === n) release(nowEpochNs() + 50_000_000n);
        return start;
      },
    });
    const followers = Promise.all(
      Array.from({ length: n - 1 }, (_, k) =>
        runLoadShard(opts(`${name}-s${k + 1}`, lp, warmup), spec(k + 1)),
      ),
    );
    // Shard 0 merges what came through the wire form, as it travels between pods.
    const { result } = await runLeadShard(opts(name, lp, warmup), spec(0), async () =>
      (await followers).map((p) => shardFromWire(JSON.parse(JSON.stringify(shardToWire(p))))),
    );
    return result;
  }

  const records = (r: LoadPointResult) =>
    readFileSync(r.files.find((f) => f.endsWith("_inferbench_requests.jsonl"))!, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const payloads = (r: LoadPointResult) => {
    const p = JSON.parse(
      readFileSync(r.files.find((f) => f.endsWith("profile_export.json"))!, "utf8"),
    ) as { experiments: { requests: { request_inputs: { payload: string } }[] }[] };
    return p.experiments[0]!.requests.map((q) => q.request_inputs.payload).sort();
  };

  it("closed loop: the same requests, and throughput and latency within a repeat's noise", async () => {
    const lp: LoadPoint = { kind: "concurrency", concurrency: 4 };
    const one = await runLoadPoint(opts("c-one", lp));
    const again = await runLoadPoint(opts("c-again", lp));
    const two = await sharded("c-two", lp, 2);
    for (const r of [one, again, two]) {
      assert.equal(r.requestCount, 48);
      assert.equal(r.errorCount, 0);
    }
    assert.deepEqual(payloads(two), payloads(one), "the same 48 request bodies");
    assert.deepEqual(
      records(two).map((r) => r.index),
      Array.from({ length: 48 }, (_, i) => i),
      "one merged export, re-indexed in send order",
    );
    assert.equal(
      two.stats!.output_sequence_length.avg * 48,
      one.stats!.output_sequence_length.avg * 48,
    );
    for (const [what, pick] of [
      ["request throughput", (r: LoadPointResult) => r.stats!.request_throughput.avg],
      ["request latency mean", (r: LoadPointResult) => r.stats!.request_latency.avg],
      ["TTFT mean", (r: LoadPointResult) => r.stats!.time_to_first_token!.avg],
    ] as const) {
      const a = pick(one);
      const noise = Math.abs(pick(again) - a) / a;
      const diff = Math.abs(pick(two) - a) / a;
      // Within the noise of a repeat (with a floor: two quiet repeats can agree to 1 %).
      assert.ok(
        diff <= Math.max(3 * noise, 0.3),
        `${what}: sharded ${pick(two).toFixed(2)} vs ${a.toFixed(2)} (repeat ${pick(again).toFixed(2)})`,
      );
    }
  });

  it("open loop: the merged schedule is the single process's schedule, arrival for arrival", async () => {
    const lp: LoadPoint = { kind: "request-rate", requestRate: 80, distribution: "poisson" };
    // Two warm-up requests over three shards: one shard warms up with none, yet draws alike.
    const one = await runLoadPoint(opts("r-one", lp, 2));
    const three = await sharded("r-three", lp, 3, 2);
    const offsets = (r: LoadPointResult) => {
      const rs = records(r);
      const t0 = BigInt(rs.map((x) => String(x.intended_ns)).sort()[0]!);
      return rs.map((x) => Number(BigInt(String(x.intended_ns)) - t0)).sort((a, b) => a - b);
    };
    assert.deepEqual(offsets(three), offsets(one));
    assert.equal(three.targetRate, one.targetRate, "the gate judges the whole schedule's rate");
    assert.deepEqual(payloads(three), payloads(one));
    // Three generators in one process on a loaded machine may lag; nothing else may fail them.
    for (const why of three.invalidReasons) assert.match(why, /generator fell behind/);
  });
});

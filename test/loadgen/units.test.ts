import assert from "node:assert/strict";
import { StringDecoder } from "node:string_decoder";
import { describe, it } from "node:test";
import fc from "fast-check";
import { PromptFactory } from "../../datagen/text.ts";
import { createRng } from "../../lib/random.ts";
import { decodeInto } from "../../loadgen/client.ts";
import { parseExtraInput, parseSweep } from "../../loadgen/profile-options.ts";
import { buildBody } from "../../loadgen/run-point.ts";
import { arrivalOffsetsNs, defaultRequestCount } from "../../loadgen/schedule.ts";
import { nextProbe, spreadRates, sweepSummaryCsv } from "../../loadgen/sweep.ts";
import { achievedRate, judgeValidity } from "../../loadgen/validity.ts";

describe("schedules", () => {
  it("constant spacing is exact; Poisson/gamma have the requested mean gap", () => {
    assert.deepEqual(
      arrivalOffsetsNs(4, 10, "constant", createRng(0)),
      [0, 100_000_000, 200_000_000, 300_000_000],
    );
    for (const d of ["poisson", "gamma"] as const) {
      const o = arrivalOffsetsNs(20001, 100, d, createRng(7), 0.5);
      const meanGapMs = o[o.length - 1]! / 20000 / 1e6;
      assert.ok(Math.abs(meanGapMs - 10) < 0.5, `${d} mean gap ${meanGapMs}`);
    }
  });
  it("gamma shape < 1 is burstier than Poisson (higher CV of gaps)", () => {
    const cv = (o: number[]) => {
      const g = o.slice(1).map((t, i) => t - o[i]!);
      const m = g.reduce((a, b) => a + b, 0) / g.length;
      return Math.sqrt(g.reduce((a, b) => a + (b - m) ** 2, 0) / g.length) / m;
    };
    const p = cv(arrivalOffsetsNs(5000, 50, "poisson", createRng(1)));
    const b = cv(arrivalOffsetsNs(5000, 50, "gamma", createRng(1), 0.25));
    assert.ok(b > p * 1.5, `${b} vs ${p}`);
  });
  it("offsets are non-decreasing (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1000 }),
        fc.double({ min: 0.1, max: 5000, noNaN: true }),
        (seed, rate) => {
          const o = arrivalOffsetsNs(50, rate, "poisson", createRng(seed));
          for (let i = 1; i < o.length; i++) assert.ok(o[i]! >= o[i - 1]!);
        },
      ),
    );
  });
  it("GenAI-Perf default request count", () => {
    assert.equal(defaultRequestCount({ concurrency: 1 }), 10);
    assert.equal(defaultRequestCount({ concurrency: 64 }), 128);
    assert.equal(defaultRequestCount({ requestRate: 2.5 }), 10);
  });
});

describe("validity gate", () => {
  it("lag threshold is max(2 ms, 5% of the mean gap)", () => {
    const lag = (ms: number) => Array(100).fill(ms * 1e6);
    assert.equal(judgeValidity({ lagNs: lag(1.9), sendOffsetsNs: [] }).valid, true);
    assert.equal(judgeValidity({ lagNs: lag(2.1), sendOffsetsNs: [] }).valid, false);
    // 1 req/s → 50 ms allowed.
    const sends = Array.from({ length: 11 }, (_, i) => i * 1e9);
    assert.equal(
      judgeValidity({ lagNs: lag(40), targetRate: 1, sendOffsetsNs: sends }).valid,
      true,
    );
    assert.equal(
      judgeValidity({ lagNs: lag(60), targetRate: 1, sendOffsetsNs: sends }).valid,
      false,
    );
  });
  it("closed loop: the threshold follows one slot's achieved mean gap", () => {
    const lag = (ms: number) => Array(100).fill(ms * 1e6);
    const sends = Array.from({ length: 11 }, (_, i) => i * 1e8); // 10 req/s → 5 ms allowed
    assert.equal(judgeValidity({ lagNs: lag(4), sendOffsetsNs: sends }).valid, true);
    assert.equal(judgeValidity({ lagNs: lag(6), sendOffsetsNs: sends }).valid, false);
    // 4 slots at 10 req/s together: each slot sends every 400 ms → 20 ms allowed.
    assert.equal(
      judgeValidity({ lagNs: lag(15), sendOffsetsNs: sends, concurrency: 4 }).valid,
      true,
    );
    assert.equal(
      judgeValidity({ lagNs: lag(25), sendOffsetsNs: sends, concurrency: 4 }).valid,
      false,
    );
  });
  it("achieved rate under 95% of target is invalid", () => {
    const sends = Array.from({ length: 11 }, (_, i) => i * 1e8); // 10 req/s
    assert.equal(achievedRate(sends), 10);
    assert.equal(judgeValidity({ lagNs: [0], targetRate: 10.5, sendOffsetsNs: sends }).valid, true);
    const v = judgeValidity({ lagNs: [0], targetRate: 11, sendOffsetsNs: sends });
    assert.equal(v.valid, false);
    assert.match(v.reasons[0]!, /achieved rate/);
  });
});

describe("auto sweep decisions", () => {
  it("doubles until a doubling gains < 10%", () => {
    assert.equal(nextProbe([]), 1);
    assert.equal(nextProbe([{ concurrency: 1, throughput: 10, errorRate: 0 }]), 2);
    assert.equal(
      nextProbe([
        { concurrency: 1, throughput: 10, errorRate: 0 },
        { concurrency: 2, throughput: 19, errorRate: 0 },
      ]),
      4,
    );
    assert.equal(
      nextProbe([
        { concurrency: 4, throughput: 30, errorRate: 0 },
        { concurrency: 8, throughput: 32, errorRate: 0 },
      ]),
      "saturated",
    );
    assert.equal(nextProbe([{ concurrency: 1, throughput: 10, errorRate: 0.5 }]), "saturated");
  });
  it("spreads rates from 10% to 100% of saturation", () => {
    assert.deepEqual(spreadRates(100, 4), [10, 40, 70, 100]);
  });
  it("summary CSV has one row per point", () => {
    const csv = sweepSummaryCsv([]);
    assert.equal(
      csv,
      "Config Name,Concurrency,p99 Time To First Token (ms),p99 Inter Token Latency (ms),p99 Request Latency (ms),Avg. Output Token Throughput (tokens/sec),Request Throughput (requests/sec),Request Count,Errors,Valid\r\n",
    );
  });
});

describe("request bodies and flags", () => {
  it("key order: model, messages, stream, max_tokens, extras", () => {
    const b = buildBody({
      model: "m",
      messages: [{ role: "user", content: "x" }],
      endpointType: "chat",
      streaming: true,
      maxTokens: 5,
      ignoreEos: true,
      minTokens: 5,
      serverUsage: false,
      extraInputs: { temperature: 0 },
    });
    assert.deepEqual(Object.keys(b), [
      "model",
      "messages",
      "stream",
      "max_tokens",
      "ignore_eos",
      "min_tokens",
      "temperature",
    ]);
    const c = buildBody({
      model: "m",
      messages: [
        { role: "system", content: "a" },
        { role: "user", content: "b" },
      ],
      endpointType: "completions",
      streaming: false,
    });
    assert.deepEqual(c, { model: "m", prompt: ["a b"] });
  });
  it("--extra-inputs typing rules", () => {
    assert.deepEqual(parseExtraInput("k:True"), { k: true });
    assert.deepEqual(parseExtraInput("k:-3"), { k: -3 });
    assert.deepEqual(parseExtraInput("k:1.5"), { k: 1.5 });
    assert.deepEqual(parseExtraInput("k:1.2.3"), { k: "1.2.3" });
    assert.deepEqual(parseExtraInput("k:a:b"), { k: "a:b" });
    assert.throws(() => parseExtraInput("novalue"), /key:value/);
  });
  it("--sweep", () => {
    assert.deepEqual(parseSweep("concurrency:1,2,4"), { kind: "concurrency", values: [1, 2, 4] });
    assert.deepEqual(parseSweep("auto"), { kind: "auto", points: 6 });
    assert.throws(() => parseSweep("concurrency:1.5"), /integers/);
  });
});

describe("prompt synthesis", () => {
  it("n words are exactly n tokens; equal hash ids share prefix text", () => {
    const pf = new PromptFactory("llama");
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.integer(), (n, seed) => {
        assert.equal(pf.tokenizer.count(pf.text(createRng(seed), n)), n);
      }),
      { numRuns: 30 },
    );
    const a = pf.fromHashIds([1, 2, 3], 1300);
    const b = pf.fromHashIds([1, 2, 9], 1100);
    assert.equal(pf.tokenizer.count(a), 1300);
    assert.equal(a.slice(0, 2000), b.slice(0, 2000));
    assert.notEqual(pf.fromHashIds([4], 100), pf.fromHashIds([5], 100));
  });
});

describe("model selection", () => {
  it("round robin and seeded random tie a model to each dataset entry", async () => {
    const { entryModels } = await import("../../loadgen/run-point.ts");
    assert.deepEqual(entryModels(5, ["a", "b"], "round_robin", createRng(0)), [
      "a",
      "b",
      "a",
      "b",
      "a",
    ]);
    const r1 = entryModels(20, ["a", "b", "c"], "random", createRng(4));
    assert.deepEqual(r1, entryModels(20, ["a", "b", "c"], "random", createRng(4)));
    assert.equal(new Set(r1).size, 3);
  });
});

describe("progress and summary table", () => {
  it("renders a bar and the GenAI-Perf table rows", async () => {
    const { renderProgress } = await import("../../loadgen/progress.ts");
    assert.match(
      renderProgress(
        { label: "c1", total: 10, completed: 5, errors: 1, inFlight: 2, elapsedS: 1 },
        10,
      ),
      /^c1 \[#####\.\.\.\.\.\] 5\/10 .*1 err, 2 in flight, 5\.0 req\/s$/,
    );
    const { summaryTable } = await import("../../loadgen/summary-table.ts");
    const { describe: stats } = await import("../../results/genai-perf/stats.ts");
    const m = stats([1e6, 2e6], "ms", 1e-6);
    const t = summaryTable(
      {
        request_throughput: { unit: "requests/sec", avg: 1234.5 },
        request_latency: m,
        request_count: { unit: "count", avg: 2 },
        time_to_first_token: m,
        output_token_throughput: { unit: "tokens/sec", avg: 10 },
        output_sequence_length: stats([3, 3], "tokens"),
        input_sequence_length: stats([5, 5], "tokens"),
      },
      true,
    );
    assert.match(t, /NVIDIA GenAI-Perf \| LLM Metrics/);
    assert.match(t, /│\s+Request Throughput \(per sec\) │ 1,234\.50 │/);
    assert.match(t, /│\s+Time To First Token \(ms\) │\s+1\.50 │\s+1\.00 │\s+2\.00 │/);
  });
});

describe("chunk decoding after the fact", () => {
  // The client keeps raw buffers and decodes once at the end; that must give exactly the chunks
  // (and stamps) that decoding each buffer on arrival gave.
  it("matches a streaming decoder for any split of any UTF-8 text", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 40 }),
        fc.array(fc.nat(200), { maxLength: 8 }),
        fc.boolean(),
        (text, cuts, complete) => {
          const bytes = Buffer.from(text, "utf8");
          const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const bufs: Buffer[] = [];
          let prev = 0;
          for (const c of [...at, bytes.length]) {
            bufs.push(bytes.subarray(prev, c));
            prev = c;
          }
          const arrivals = bufs.map((_, i) => 100 + i);
          // Reference: the old per-arrival decoding.
          const dec = new StringDecoder("utf8");
          const refHr: number[] = [];
          const refChunks: string[] = [];
          bufs.forEach((b, i) => {
            const s = dec.write(b);
            if (s.length > 0) {
              refHr.push(arrivals[i]!);
              refChunks.push(s);
            }
          });
          if (complete) {
            const rest = dec.end();
            if (rest.length > 0) {
              refHr.push(999);
              refChunks.push(rest);
            }
          }
          const res = { body: "", chunkEnds: [] as number[], chunkHr: [] as number[] };
          decodeInto(res, bufs, arrivals, complete ? 999 : undefined);
          assert.deepEqual(res.chunkHr, refHr);
          assert.equal(res.body, refChunks.join(""));
          let end = 0;
          assert.deepEqual(
            res.chunkEnds,
            refChunks.map((c) => (end += c.length)),
          );
        },
      ),
      { seed: 7, numRuns: 300 },
    );
  });
});

describe("dead models", () => {
  it("a model with no successful request makes the point invalid, naming it and its failures", async () => {
    const { deadModels } = await import("../../loadgen/run-point.ts");
    const rec = (model: string, status: "ok" | "error") =>
      ({ model, status }) as Parameters<typeof deadModels>[1][number];
    const records = [rec("a", "ok"), rec("b", "error"), rec("b", "error"), rec("a", "error")];
    assert.deepEqual(deadModels(["a", "b"], records), [
      "model b: no successful request (2 failed)",
    ]);
    assert.deepEqual(deadModels(["a"], [rec("a", "ok")]), []);
    // A model the schedule never sent to is not "dead" here (nothing was asked of it).
    assert.deepEqual(deadModels(["a", "c"], [rec("a", "ok")]), []);
  });
});

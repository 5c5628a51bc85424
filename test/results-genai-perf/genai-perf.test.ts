import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { percentile } from "../../lib/percentile.ts";
import { getTokenizer } from "../../lib/tokenizer.ts";
import {
  genaiPerfCsv,
  genaiPerfJson,
  metricOf,
  parseCsv,
  parseResponses,
  populationStd,
  profileExportJson,
  pyFloatRepr,
  pyFormatComma2,
  pyJsonDumps,
  readGenAiPerfCsv,
  readGenAiPerfJson,
  readProfileExport,
  requestMetrics,
  roundHalfEven,
  runFolderName,
  summarize,
} from "../../results/genai-perf/index.ts";

const FIX = new URL("../../fixtures/genai-perf/", import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, FIX), "utf8");

describe("genai-perf raw fixture (genai-perf's own test expectations)", () => {
  const raw = readProfileExport(fixture("genai_perf_testfixture_openai_chat_profile_export.json"));
  const reqs = raw.experiments[0]!.requests;
  // genai-perf's test counts with the Llama-2 tokenizer; these are its counts of the two outputs.
  const llama2 = new Map([
    ["I like dogs", 3],
    ["Idon'tcook food", 6],
  ]);
  const count = (t: string) => llama2.get(t) ?? getTokenizer("llama3").count(t);

  it("derives latency, TTFT, TTST, ITL, throughput and OSL exactly", () => {
    const ms = reqs.map((r) => requestMetrics(r, count)!);
    assert.deepEqual(
      ms.map((m) => m.latencyNs),
      [11, 13],
    );
    assert.deepEqual(
      ms.map((m) => m.ttftNs),
      [4, 5],
    );
    assert.deepEqual(
      ms.map((m) => m.ttstNs),
      [3, 4],
    );
    assert.deepEqual(
      ms.map((m) => m.itlNs),
      [4, 2],
    );
    assert.deepEqual(
      ms.map((m) => m.osl),
      [3, 6],
    );
    const s = summarize(ms);
    assert.equal(s.request_throughput.avg, 2 / (14 / 1e9));
    assert.equal(s.request_count.avg, 2);
  });

  it("with the shipped Llama-3 tokenizer only OSL of the second request differs (5 vs 6)", () => {
    const tk = getTokenizer("llama3");
    const ms = reqs.map((r) => requestMetrics(r, tk.count)!);
    assert.deepEqual(
      ms.map((m) => m.osl),
      [3, 5],
    );
    assert.deepEqual(
      ms.map((m) => m.itlNs),
      [4, 2],
    );
  });
});

describe("SSE re-joining", () => {
  const ev = (content: string) =>
    `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }] })}\n\n`;
  it("re-joins events split across chunks and splits chunks holding several", () => {
    const whole = ev("a") + ev("b") + ev("c");
    const parts = [whole.slice(0, 10), whole.slice(10, 60), whole.slice(60)];
    const p = parseResponses([1n, 2n, 3n], parts);
    assert.deepEqual(
      p.responses.map((r) => [r.text, r.timestamp]),
      [
        ["a", 2n],
        ["b", 3n],
        ["c", 3n],
      ],
    );
  });
  it("skips comments/event/id lines, tolerates empty choices, records usage", () => {
    const usage = `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 2 } })}\n\n`;
    const p = parseResponses(
      [1n, 2n, 3n, 4n],
      [": ping\n\n", `event: message\nid: 7\n${ev("x")}`, usage, "data: [DONE]\n\n"],
    );
    assert.deepEqual(
      p.responses.filter((r) => r.text).map((r) => r.text),
      ["x"],
    );
    assert.equal(p.usage?.completionTokens, 2);
  });
  it("property: any chunking of a stream yields the same texts", () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { maxLength: 6 }),
        (texts, cuts) => {
          const whole = texts.map(ev).join("");
          const pts = [...new Set(cuts.map((c) => c % whole.length))].sort((a, b) => a - b);
          const chunks: string[] = [];
          let prev = 0;
          for (const c of [...pts, whole.length]) {
            if (c > prev) chunks.push(whole.slice(prev, c));
            prev = c;
          }
          const p = parseResponses(
            chunks.map((_, i) => BigInt(i)),
            chunks,
          );
          assert.deepEqual(
            p.responses.map((r) => r.text),
            texts,
          );
        },
      ),
    );
  });
});

describe("numpy-compatible statistics", () => {
  it("percentiles interpolate linearly like numpy", () => {
    assert.equal(percentile([1, 2, 3, 4], 25), 1.75);
    assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
    assert.equal(percentile([1, 2, 3, 4], 99), 3.9699999999999998);
    assert.equal(percentile([5], 90), 5);
  });
  it("population std and half-even rounding", () => {
    assert.equal(populationStd([1, 2, 3, 4]), Math.sqrt(1.25));
    assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, 4, 2, 3]);
  });
  it("percentile is monotonic and bounded (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1 }),
        (xs) => {
          const s = [...xs].sort((a, b) => a - b);
          let prev = Number.NEGATIVE_INFINITY;
          for (const p of [0, 1, 5, 25, 50, 75, 95, 99, 100]) {
            const v = percentile(xs, p);
            assert.ok(v >= prev && v >= s[0]! && v <= s[s.length - 1]!);
            prev = v;
          }
        },
      ),
    );
  });
});

describe("Python-compatible formatting", () => {
  it("repr(float)", () => {
    assert.equal(pyFloatRepr(2551), "2551.0");
    assert.equal(pyFloatRepr(0.0001), "0.0001");
    assert.equal(pyFloatRepr(0.00001), "1e-05");
    assert.equal(pyFloatRepr(1e16), "1e+16");
    assert.equal(pyFloatRepr(1234567890123456), "1234567890123456.0");
    assert.equal(pyFloatRepr(5767.434807386666), "5767.434807386666");
    assert.equal(pyFloatRepr(-2.5e-7), "-2.5e-07");
  });
  it('f"{v:,.2f}" with ties to even', () => {
    assert.equal(pyFormatComma2(1146.3149), "1,146.31");
    assert.equal(pyFormatComma2(1234567.891), "1,234,567.89");
    assert.equal(pyFormatComma2(0.125), "0.12");
    assert.equal(pyFormatComma2(0.375), "0.38");
    assert.equal(pyFormatComma2(2.675), "2.67"); // binary value below the tie
    assert.equal(pyFormatComma2(-1000), "-1,000.00");
    assert.equal(pyFormatComma2(0), "0.00");
  });
  it("json.dumps(indent=2, ensure_ascii)", () => {
    assert.equal(
      pyJsonDumps({ a: [1, "é"], b: {}, c: [] }, 2),
      '{\n  "a": [\n    1,\n    "\\u00e9"\n  ],\n  "b": {},\n  "c": []\n}',
    );
  });
  it("folder names", () => {
    assert.equal(
      runFolderName(["meta-llama/Llama-3.1-8B"], "chat", { mode: "request_rate", value: 10 }),
      "meta-llama_Llama-3.1-8B-openai-chat-request_rate10.0",
    );
    assert.equal(
      runFolderName(["m"], "completions", { mode: "concurrency", value: 4 }),
      "m-openai-completions-concurrency4",
    );
  });
});

describe("our CSV and JSON, byte for byte", () => {
  const ev = (content: string) =>
    `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }] })}\n\n`;
  const mk = (t0: bigint, gaps: number[]) => {
    let t = t0;
    const ts: bigint[] = [];
    for (const g of gaps) {
      t += BigInt(g);
      ts.push(t);
    }
    return {
      timestamp: t0,
      payload: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi there" }] }),
      responseTimestamps: ts,
      responses: gaps.map((_, i) => ev(` w${i}`)),
    };
  };
  const count = (t: string) => t.split(" ").filter(Boolean).length;
  const ms = [
    mk(1_700_000_000_000_000_000n, [1_234_567_890, 20_000_000, 20_000_000]),
    mk(1_700_000_000_500_000_000n, [900_000_000, 10_000_000, 30_000_000]),
  ].map((r) => requestMetrics(r, count)!);
  const stats = summarize(ms, { time_to_first_token: 1000 });

  it("CSV: CRLF, quoted thousands, goodput row, exact text", () => {
    const csv = genaiPerfCsv(stats, true);
    assert.equal(
      csv,
      [
        "Metric,avg,min,max,p99,p95,p90,p75,p50,p25,p10,p5,p1",
        'Time To First Token (ms),"1,067.28",900.00,"1,234.57","1,231.22","1,217.84","1,201.11","1,150.93","1,067.28",983.64,933.46,916.73,903.35',
        "Time To Second Token (ms),15.00,10.00,20.00,19.90,19.50,19.00,17.50,15.00,12.50,11.00,10.50,10.10",
        'Request Latency (ms),"1,107.28",940.00,"1,274.57","1,271.22","1,257.84","1,241.11","1,190.93","1,107.28","1,023.64",973.46,956.73,943.35',
        "Inter Token Latency (ms),20.00,20.00,20.00,20.00,20.00,20.00,20.00,20.00,20.00,20.00,20.00,20.00",
        "Output Token Throughput Per User (tokens/sec/user),50.00,50.00,50.00,50.00,50.00,50.00,50.00,50.00,50.00,50.00,50.00,50.00",
        "Output Sequence Length (tokens),3.00,3.00,3.00,3.00,3.00,3.00,3.00,3.00,3.00,3.00,3.00,3.00",
        "Input Sequence Length (tokens),2.00,2.00,2.00,2.00,2.00,2.00,2.00,2.00,2.00,2.00,2.00,2.00",
        "",
        "Metric,Value",
        "Output Token Throughput (tokens/sec),4.17",
        "Request Throughput (per sec),1.39",
        "Request Goodput (per sec),0.69",
        "Request Count (count),2.00",
        "",
      ].join("\r\n"),
    );
    const back = readGenAiPerfCsv(csv);
    assert.equal(back.requestMetrics[0]!.stats["avg"], 1067.28);
    assert.equal(back.systemMetrics.find((r) => r.name === "request_count")!.value, 2);
  });
  it("non-streaming CSV leaves the streaming rows out", () => {
    const csv = genaiPerfCsv(stats, false);
    assert.ok(!csv.includes("Time To First Token") && !csv.includes("Inter Token"));
    assert.ok(csv.includes("Request Latency (ms)"));
  });
  it("JSON: key order, float repr, every stat key", () => {
    const text = genaiPerfJson(stats, { model_names: ["m"] });
    const keys = Object.keys(JSON.parse(text));
    assert.deepEqual(keys, [
      "request_throughput",
      "request_latency",
      "request_goodput",
      "request_count",
      "time_to_first_token",
      "time_to_second_token",
      "inter_token_latency",
      "output_token_throughput",
      "output_token_throughput_per_user",
      "output_sequence_length",
      "input_sequence_length",
      "input_config",
    ]);
    assert.match(text, /"request_count": \{\n {4}"unit": "count",\n {4}"avg": 2\.0\n {2}\}/);
    assert.deepEqual(Object.keys(JSON.parse(text).request_latency), [
      "unit",
      "avg",
      "p1",
      "p5",
      "p10",
      "p25",
      "p50",
      "p75",
      "p90",
      "p95",
      "p99",
      "min",
      "max",
      "std",
    ]);
    assert.match(text, /"max": 3\.0/);
  });
  it("raw export round-trips exact nanosecond timestamps", () => {
    const raw = mk(1_700_000_000_000_000_001n, [3, 5]);
    const text = profileExportJson({
      experiment: { mode: "concurrency", value: 1 },
      requests: [raw],
      windowBoundaries: [raw.timestamp, raw.timestamp + 8n],
      endpoint: "v1/chat/completions",
      version: "x",
    });
    assert.ok(text.startsWith('{"experiments":[{"experiment":{"mode":"concurrency","value":1}'));
    assert.ok(text.includes('"timestamp":1700000000000000001,'));
    const rate = profileExportJson({
      experiment: { mode: "request_rate", value: 10 },
      requests: [],
      windowBoundaries: [],
      endpoint: "v1/completions",
      version: "x",
    });
    assert.ok(
      rate.startsWith('{"experiments":[{"experiment":{"mode":"request_rate","value":10.0}'),
    );
    const back = readProfileExport(text);
    assert.equal(back.experiments[0]!.requests[0]!.timestamp, 1_700_000_000_000_000_001n);
    assert.deepEqual(back.experiments[0]!.requests[0]!.responseTimestamps, [
      1_700_000_000_000_000_004n,
      1_700_000_000_000_000_009n,
    ]);
  });
});

describe("published samples read back", () => {
  it("pa298 JSON (pre-D, flat input_config, per_request key)", () => {
    const r = readGenAiPerfJson(fixture("pa298_triton_streaming_profile_export_genai_perf.json"));
    assert.equal(r.era, "pre-D");
    assert.equal(r.concurrency, 100);
    assert.equal(r.streaming, true);
    assert.equal(r.metrics["request_latency"]!.p99, 5910.154859249999);
    assert.equal(metricOf(r, "output_token_throughput_per_user")!.avg, 445.00388376637636);
    assert.equal(r.metrics["request_throughput"]!.avg, 17.222547659562533);
  });
  it("pa393 CSV (old label, p25..p99)", () => {
    const r = readGenAiPerfCsv(
      fixture("pa393_openai_chat_streaming_profile_export_genai_perf.csv"),
    );
    assert.deepEqual(r.columns, ["avg", "min", "max", "p99", "p95", "p90", "p75", "p50", "p25"]);
    const ttft = r.requestMetrics.find((m) => m.name === "time_to_first_token")!;
    assert.equal(ttft.stats["avg"], 32688.4);
    assert.equal(ttft.unit, "ms");
    const otp = r.systemMetrics.find((m) => m.name === "output_token_throughput")!;
    assert.equal(otp.value, 410.43);
    assert.equal(otp.unit, "tokens/sec");
    assert.equal(r.systemMetrics.find((m) => m.name === "request_count")!.value, 353);
  });
  it("cloudai CSV", () => {
    const r = readGenAiPerfCsv(fixture("cloudai_ai_dynamo_profile_genai_perf.csv"));
    const isl = r.requestMetrics.find((m) => m.name === "input_sequence_length")!;
    assert.equal(isl.stats["avg"], 3000.05);
    assert.equal(r.requestMetrics.length, 6);
  });
  it("parseCsv handles quotes, CRLF and blank lines", () => {
    assert.deepEqual(parseCsv('a,"1,2"\r\n\r\nb,"x""y"\n'), [["a", "1,2"], [], ["b", 'x"y']]);
  });
});

describe("raw export event split", () => {
  it("one response per SSE event, [DONE] on its own, same metrics", async () => {
    const { splitSseEvents } = await import("../../results/genai-perf/sse.ts");
    const ev = (c: string) =>
      `data: ${JSON.stringify({ choices: [{ delta: { content: c } }] })}\n\n`;
    const whole = `${ev("a")}${ev("b")}data: [DONE]\n\n`;
    const chunks = [
      whole.slice(0, 5),
      whole.slice(5, whole.length - 3),
      whole.slice(whole.length - 3),
    ];
    const s = splitSseEvents([1n, 2n, 3n], chunks);
    assert.deepEqual(s.responses, [ev("a"), ev("b"), "data: [DONE]\n\n"]);
    assert.deepEqual(s.timestamps, [2n, 2n, 3n]);
    const a = parseResponses([1n, 2n, 3n], chunks).responses.map((r) => [r.text, r.timestamp]);
    const b = parseResponses(s.timestamps, s.responses).responses.map((r) => [r.text, r.timestamp]);
    assert.deepEqual(a, b);
  });
});

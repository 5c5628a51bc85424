import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type RunLoadPointOptions, runLoadPoint } from "../../loadgen/run-point.ts";
import {
  readGenAiPerfCsv,
  readGenAiPerfJson,
  readProfileExport,
} from "../../results/genai-perf/index.ts";
import type { DatasetPlan, LoadPoint, WorkloadPlan } from "../../stacks/plan-types.ts";
import { type SseServer, startSseServer } from "../../testkit/sse-server.ts";

const DATA = new URL("../../fixtures/datasets/", import.meta.url).pathname;

let srv: SseServer;
let dir: string;
before(async () => {
  srv = await startSseServer({ record: true, defaultTokens: 4 });
  dir = mkdtempSync(join(tmpdir(), "ib-loadgen-"));
});
after(async () => {
  await srv.close();
  rmSync(dir, { recursive: true, force: true });
});

function wl(dataset: DatasetPlan, over: Partial<WorkloadPlan> = {}): WorkloadPlan {
  return {
    dataset,
    endpointType: "chat",
    streaming: true,
    outputTokensStddev: 0,
    ignoreEos: false,
    models: ["llama"],
    ...over,
  };
}

const synth: DatasetPlan = {
  kind: "synthetic",
  inputTokensMean: 20,
  inputTokensStddev: 0,
  numDatasetEntries: 5,
};

function opts(
  name: string,
  workload: WorkloadPlan,
  loadPoint: LoadPoint,
  over: Partial<RunLoadPointOptions> = {},
): RunLoadPointOptions {
  return {
    url: srv.url,
    models: ["llama"],
    workload,
    loadPoint,
    seed: 0,
    warmupRequests: 0,
    artifactDir: join(dir, name),
    progress: false,
    requestTimeoutMs: 10_000,
    ...over,
  };
}

const readJsonl = (p: string) =>
  readFileSync(p, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe("load generator against the test SSE server", () => {
  it("concurrency, streaming chat: era-D folder, files, warm-up not exported, extras", async () => {
    const before = srv.count;
    const r = await runLoadPoint(
      opts(
        "c4",
        wl(synth, { requestCount: 12, outputTokensMean: 5 }),
        { kind: "concurrency", concurrency: 4 },
        { warmupRequests: 3, models: ["org/llama"] },
      ),
    );
    assert.equal(srv.count - before, 15);
    assert.ok(r.runDir.endsWith("org_llama-openai-chat-concurrency4"));
    assert.deepEqual(readdirSync(r.runDir).sort(), [
      "inputs.json",
      "profile_export.json",
      "profile_export_genai_perf.csv",
      "profile_export_genai_perf.json",
      "profile_export_inferbench.json",
      "profile_export_inferbench_requests.jsonl",
    ]);
    const g = readGenAiPerfJson(
      readFileSync(join(r.runDir, "profile_export_genai_perf.json"), "utf8"),
    );
    assert.equal(g.era, "D");
    assert.equal(g.concurrency, 4);
    assert.equal(g.metrics["request_count"]!.avg, 12);
    assert.equal(g.metrics["output_sequence_length"]!.avg, 5);
    assert.equal(g.metrics["input_sequence_length"]!.avg, 20);
    assert.ok(g.metrics["inter_token_latency"]);
    const raw = readProfileExport(readFileSync(join(r.runDir, "profile_export.json"), "utf8"));
    assert.equal(raw.experiments[0]!.requests.length, 12);
    assert.equal(raw.endpoint, "v1/chat/completions");
    const body = JSON.parse(raw.experiments[0]!.requests[0]!.payload);
    assert.deepEqual(Object.keys(body), [
      "model",
      "messages",
      "stream",
      "max_tokens",
      "stream_options",
    ]);
    const inputs = JSON.parse(readFileSync(join(r.runDir, "inputs.json"), "utf8"));
    assert.equal(inputs.data.length, 5);
    const recs = readJsonl(join(r.runDir, "profile_export_inferbench_requests.jsonl"));
    assert.equal(recs.length, 12);
    assert.equal(recs[0]!["backend"], "sim-0");
    assert.equal(recs[0]!["usage_completion_tokens"], 5);
    assert.equal(recs[0]!["osl_tokens"], 5);
    const extras = JSON.parse(
      readFileSync(join(r.runDir, "profile_export_inferbench.json"), "utf8"),
    );
    assert.equal(extras.valid, r.valid);
    assert.equal(extras.server_usage.completion_tokens, 60);
    assert.equal(extras.tokenizer_counts.output_tokens, 60);
  });

  it("request rate, non-streaming completions: no streaming rows, one response each", async () => {
    const r = await runLoadPoint(
      opts("rate", wl(synth, { requestCount: 10, endpointType: "completions", streaming: false }), {
        kind: "request-rate",
        requestRate: 200,
        distribution: "poisson",
      }),
    );
    assert.ok(r.runDir.endsWith("llama-openai-completions-request_rate200.0"));
    const csv = readGenAiPerfCsv(
      readFileSync(join(r.runDir, "profile_export_genai_perf.csv"), "utf8"),
    );
    assert.deepEqual(
      csv.requestMetrics.map((m) => m.name),
      ["request_latency", "output_sequence_length", "input_sequence_length"],
    );
    const raw = readProfileExport(readFileSync(join(r.runDir, "profile_export.json"), "utf8"));
    assert.ok(raw.experiments[0]!.requests.every((q) => q.responses.length === 1));
    assert.equal(raw.experiments[0]!.mode, "request_rate");
    assert.equal(r.targetRate !== undefined, true);
  });

  it("failed requests are counted, kept out of latency stats; --max-error-rate aborts (exit 4)", async () => {
    const bad = await startSseServer({ failWhen: (i) => (i % 4 === 0 ? 500 : undefined) });
    try {
      const r = await runLoadPoint(
        opts(
          "errs",
          wl(synth, { requestCount: 16 }),
          { kind: "concurrency", concurrency: 2 },
          { url: bad.url },
        ),
      );
      assert.equal(r.errorCount, 4);
      assert.equal(r.stats!.request_count.avg, 12);
      const recs = readJsonl(join(r.runDir, "profile_export_inferbench_requests.jsonl"));
      assert.equal(
        recs.filter((x) => x["status"] === "error" && x["http_status"] === 500).length,
        4,
      );
      const raw = readProfileExport(readFileSync(join(r.runDir, "profile_export.json"), "utf8"));
      assert.equal(raw.experiments[0]!.requests.length, 12);
      const a = await runLoadPoint(
        opts(
          "abort",
          wl(synth, { requestCount: 200 }),
          { kind: "concurrency", concurrency: 1 },
          { url: bad.url, maxErrorRate: 0.1 },
        ),
      );
      assert.ok(a.aborted?.includes("max-error-rate"));
      assert.equal(a.exitCode, 4);
      assert.ok(a.requestCount < 200);
    } finally {
      await bad.close();
    }
  });

  it("--measurement-interval: a time-boxed closed loop stops after the interval", async () => {
    const slow = await startSseServer({ tokenDelayMs: 10, defaultTokens: 2 });
    try {
      const t0 = Date.now();
      const r = await runLoadPoint(
        opts(
          "interval",
          wl(synth),
          { kind: "concurrency", concurrency: 2 },
          { url: slow.url, durationMs: 300 },
        ),
      );
      assert.ok(r.requestCount >= 2 && r.errorCount === 0);
      assert.ok(Date.now() - t0 < 5000);
    } finally {
      await slow.close();
    }
  });

  it("validity gate: a capped open loop that cannot reach its rate is invalid (exit 3)", async () => {
    const slow = await startSseServer({ tokenDelayMs: 5, defaultTokens: 3 });
    try {
      const r = await runLoadPoint(
        opts(
          "invalid",
          wl(synth, { requestCount: 20 }),
          { kind: "request-rate", requestRate: 1000, distribution: "constant", maxConcurrency: 1 },
          { url: slow.url },
        ),
      );
      assert.equal(r.valid, false);
      assert.equal(r.exitCode, 3);
      assert.ok(r.invalidReasons.some((x) => x.includes("achieved rate")));
      const extras = JSON.parse(
        readFileSync(join(r.runDir, "profile_export_inferbench.json"), "utf8"),
      );
      assert.equal(extras.valid, false);
      assert.equal(extras.exit_code, 3);
    } finally {
      await slow.close();
    }
  });
});

describe("every workload type", () => {
  const conc: LoadPoint = { kind: "concurrency", concurrency: 4 };
  const replay: LoadPoint = { kind: "request-rate", requestRate: 1, distribution: "constant" };

  it("JSONL input file ({text} rows)", async () => {
    const f = join(dir, "in.jsonl");
    writeFileSync(f, '{"text": "hello world"}\n{"text": "second prompt here"}\n');
    const n0 = srv.received.length;
    const r = await runLoadPoint(
      opts("jsonl", wl({ kind: "input-file", path: f }, { requestCount: 4 }), conc),
    );
    assert.equal(r.requestCount, 4);
    const sent = srv.received
      .slice(n0)
      .map((x) => (x.body["messages"] as { content: string }[])[0]!.content);
    assert.deepEqual(new Set(sent), new Set(["hello world", "second prompt here"]));
  });

  it("ShareGPT conversation pieces", async () => {
    const n0 = srv.received.length;
    const r = await runLoadPoint(
      opts(
        "sharegpt",
        wl({
          kind: "sharegpt",
          path: join(DATA, "fastchat_dummy_conversation_sharegpt.json"),
          maxConversations: 20,
          numPrompts: 8,
        }),
        conc,
      ),
    );
    assert.equal(r.requestCount, 10); // GenAI-Perf default max(10, 2×4) over 8 cycled prompts
    const inputs = JSON.parse(readFileSync(join(r.runDir, "inputs.json"), "utf8"));
    assert.equal(inputs.data.length, 8);
    for (const x of srv.received.slice(n0)) {
      const msgs = x.body["messages"] as { role: string }[];
      assert.equal(msgs[msgs.length - 1]!.role, "user");
      assert.equal(msgs.length % 2, 1);
    }
  });

  it("multi-round QA: sessions with growing history and a session header", async () => {
    const n0 = srv.received.length;
    const r = await runLoadPoint(
      opts(
        "mrqa",
        wl({
          kind: "multi-round-qa",
          users: 3,
          rounds: 2,
          systemPromptTokens: 30,
          questionTokens: 10,
          answerTokens: 3,
        }),
        { kind: "request-rate", requestRate: 100, distribution: "constant" },
        { sessionHeader: "x-user-id" },
      ),
    );
    assert.equal(r.requestCount, 6);
    const got = srv.received.slice(n0);
    const byUser = new Map<string, number[]>();
    for (const x of got) {
      const u = String(x.headers["x-user-id"]);
      byUser.set(u, [...(byUser.get(u) ?? []), (x.body["messages"] as unknown[]).length]);
    }
    assert.equal(byUser.size, 3);
    for (const lens of byUser.values()) assert.deepEqual(lens, [2, 4]); // system+q, then +answer+q
    const second = got.find((x) => (x.body["messages"] as unknown[]).length === 4)!;
    assert.equal(
      (second.body["messages"] as { role: string; content: string }[])[2]!.content,
      " hello hello hello",
    );
  });

  it("shared-prefix synthetic: groups share a system prompt", async () => {
    const n0 = srv.received.length;
    await runLoadPoint(
      opts(
        "prefix",
        wl(
          {
            kind: "shared-prefix",
            groups: 2,
            promptsPerGroup: 3,
            systemPromptTokens: 40,
            questionTokens: 5,
          },
          { requestCount: 6 },
        ),
        conc,
      ),
    );
    const systems = new Set(
      srv.received.slice(n0).map((x) => (x.body["messages"] as { content: string }[])[0]!.content),
    );
    assert.equal(systems.size, 2);
  });

  it("Azure trace replay with --time-scale", async () => {
    const r = await runLoadPoint(
      opts(
        "azure",
        wl({
          kind: "azure-trace",
          path: join(DATA, "azure_llm_2023_code.csv"),
          timeScale: 0.001,
          maxRequests: 6,
        }),
        replay,
        { fixedSchedule: true },
      ),
    );
    assert.equal(r.requestCount, 6);
    assert.ok(r.runDir.endsWith("-fixed_schedule"));
    const recs = readJsonl(join(r.runDir, "profile_export_inferbench_requests.jsonl"));
    const isl = recs.map((x) => x["isl_tokens"]);
    const rows = readFileSync(join(DATA, "azure_llm_2023_code.csv"), "utf8")
      .split("\r\n")
      .slice(1, 7)
      .map((l) => Number(l.split(",")[1]));
    assert.deepEqual([...isl].sort(), [...rows].sort());
  });

  it("Mooncake JSONL: equal hash ids give identical prefix text", async () => {
    const n0 = srv.received.length;
    const r = await runLoadPoint(
      opts(
        "mooncake",
        wl({
          kind: "mooncake",
          path: join(DATA, "mooncake_fast25_conversation_trace_head.jsonl"),
          timeScale: 0.001,
          maxRequests: 4,
        }),
        replay,
        { fixedSchedule: true },
      ),
    );
    assert.equal(r.requestCount, 4);
    const texts = srv.received
      .slice(n0)
      .map((x) => (x.body["messages"] as { content: string }[])[0]!.content);
    // Rows 1 and 2 share hash id 0 (first 512-token block) and differ afterwards.
    const lines = readFileSync(join(DATA, "mooncake_fast25_conversation_trace_head.jsonl"), "utf8")
      .split("\n")
      .slice(0, 2)
      .map((l) => JSON.parse(l) as { input_length: number });
    const a = texts.find((t) => t.split(" ").length === lines[0]!.input_length)!;
    const b = texts.find((t) => t.split(" ").length === lines[1]!.input_length)!;
    const wa = a.split(" ");
    const wb = b.split(" ");
    assert.deepEqual(wa.slice(0, 512), wb.slice(0, 512));
    assert.notDeepEqual(wa.slice(512, 1024), wb.slice(512, 1024));
  });

  it("ServeGen windows", async () => {
    const r = await runLoadPoint(
      opts(
        "servegen",
        wl({
          kind: "servegen",
          path: join(DATA, "servegen_m-large_chunk-1-trace.csv"),
          datasetPath: join(DATA, "servegen_m-large_chunk-1-dataset.json"),
          timeScale: 0.0001,
          maxRequests: 5,
        }),
        replay,
        { fixedSchedule: true },
      ),
    );
    assert.equal(r.requestCount, 5);
    assert.ok(r.stats!.input_sequence_length.min! > 0);
  });

  it("payload JSONL with session_id: turns of a session run in order", async () => {
    const f = join(dir, "sessions.jsonl");
    writeFileSync(
      f,
      [
        '{"session_id": "a", "input_length": 5, "output_length": 2}',
        '{"session_id": "b", "input_length": 6, "output_length": 2}',
        '{"session_id": "a", "input_length": 7, "output_length": 2, "delay": 1}',
      ].join("\n"),
    );
    const n0 = srv.received.length;
    const r = await runLoadPoint(opts("sess", wl({ kind: "input-file", path: f }), conc));
    assert.equal(r.requestCount, 3);
    const a = srv.received.slice(n0).filter((x) => x.headers["x-session-id"] === "a");
    assert.deepEqual(
      a.map((x) => (x.body["messages"] as unknown[]).length),
      [1, 3],
    );
  });
});

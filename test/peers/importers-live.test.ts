/**
 * Every importer round-trips a peer output made here and now: AIPerf, genai-perf and
 * perf_analyzer each run against the same engine-sim, their folders are imported, and what compare
 * reads back reproduces the tool's own summary (genai-perf's parser for perf_analyzer's export).
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadArtifactSide } from "../../results/artifact-sides.ts";
import { summarizeSide } from "../../results/compare.ts";
import { readPeerRun, writeImport } from "../../results/importers/index.ts";
import { type Backend, peersOrSkip, ROOT, runPeer, startEngineSim } from "./peers.ts";

const { peers, skip } = peersOrSkip();
/** compare takes E2E as end − start of epoch-ns doubles: ~0.25 µs steps at today's epoch. */
const E2E = 1e-5;
const near = (a: number, b: number, rel: number, what: string) =>
  assert.ok(Math.abs(a - b) <= rel * Math.abs(b), `${what}: ${a} vs ${b}`);
const json = (f: string) => JSON.parse(readFileSync(f, "utf8"));

describe("importers round-trip peer outputs made in the test", { skip }, () => {
  let backend: Backend;
  let dir: string;
  before(async () => {
    backend = await startEngineSim(3);
    dir = mkdtempSync(join(tmpdir(), "ib-peers-import-"));
  });
  after(async () => {
    await backend?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const side = (from: string, src: string) => {
    const out = join(dir, `import-${from}`);
    writeImport(readPeerRun(from, src), out, { version: "test", emulated: true });
    const s = loadArtifactSide(out, from);
    assert.equal(s.points.length, 1);
    return summarizeSide(from, s.points[0]!, {});
  };

  it("aiperf", async () => {
    const out = join(dir, "aiperf");
    await runPeer(peers!.aiperf, [
      "profile",
      ...["-m", "llama-3.1-8b", "-u", `http://${backend.url}`, "--endpoint-type", "chat"],
      ...["--streaming", "--concurrency", "2", "--request-count", "8"],
      ...["--prompt-input-tokens-mean", "24", "--prompt-output-tokens-mean", "12"],
      ...["--tokenizer", "inferbench/llama-3-tokenizer", "--ui-type", "none"],
      ...["--no-server-metrics", "--no-gpu-telemetry", "--output-artifact-dir", out],
    ]);
    const s = side("aiperf", out);
    const ap = json(join(out, "profile_export_aiperf.json"));
    assert.equal(s.requests, 8);
    near(s.ttftMs!.p50, ap.time_to_first_token.p50, 1e-6, "TTFT p50");
    near(s.ttftMs!.p99, ap.time_to_first_token.p99, 1e-6, "TTFT p99");
    near(s.e2eMs.mean, ap.request_latency.avg, E2E, "latency avg");
    near(s.itlMs!.mean, ap.inter_token_latency.avg, 0.005, "ITL avg");
  });

  it("genai-perf", async () => {
    const out = join(dir, "genai-perf");
    await runPeer(
      peers!.genaiPerf,
      [
        "profile",
        ...["-m", "llama-3.1-8b", "-u", backend.url, "--endpoint-type", "completions"],
        ...["--streaming", "--concurrency", "2", "--request-count", "8"],
        ...["--synthetic-input-tokens-mean", "24", "--output-tokens-mean", "12"],
        ...["--tokenizer", peers!.tokenizer, "--artifact-dir", out],
      ],
      { cwd: dir, timeoutMs: 240_000 },
    );
    const s = side("genai-perf", out);
    const run = join(out, readdirSync(out)[0]!);
    const g = json(join(run, "profile_export_genai_perf.json"));
    assert.equal(s.requests, 8);
    near(s.ttftMs!.p50, g.time_to_first_token.p50, 1e-6, "TTFT p50");
    near(s.e2eMs.p99, g.request_latency.p99, E2E, "latency p99");
    near(s.itlMs!.mean, g.inter_token_latency.avg, 0.005, "ITL avg");
  });

  it("perf-analyzer", async () => {
    const out = join(dir, "pa");
    mkdirSync(out);
    const inputs = join(out, "inputs.json");
    const data = [0, 1, 2].map((i) => ({
      payload: [
        {
          model: "llama-3.1-8b",
          messages: [{ role: "user", content: `question ${i}: what is the capital of France?` }],
          stream: true,
          max_tokens: 10,
        },
      ],
    }));
    writeFileSync(inputs, JSON.stringify({ data }));
    const exportFile = join(out, "profile_export.json");
    await runPeer(peers!.perfAnalyzer, [
      ...["-m", "llama-3.1-8b", "--async", "--stability-percentage", "999"],
      ...["--request-count", "8", "-i", "http", "-u", backend.url, "--concurrency-range", "2"],
      ...["--service-kind", "openai", "--endpoint", "v1/chat/completions"],
      ...["--input-data", inputs, "--profile-export-file", exportFile],
    ]);
    const s = side("perf-analyzer", out);
    const { stdout } = await runPeer(peers!.python, [
      join(ROOT, "peers/genai-perf-parse.py"),
      exportFile,
      peers!.tokenizer,
    ]);
    const g = JSON.parse(stdout).experiments[0].stats;
    assert.equal(s.requests, g.request_count.avg);
    near(s.ttftMs!.p50, g.time_to_first_token.p50, 1e-6, "TTFT p50");
    near(s.e2eMs.p99, g.request_latency.p99, E2E, "latency p99");
    near(s.itlMs!.mean, g.inter_token_latency.avg, 0.005, "ITL avg");
  });
});

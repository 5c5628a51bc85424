/**
 * The GenAI-Perf compatibility fixes that test:peers found with the real genai-perf, pinned here
 * without it (runs in npm test): the completions prompt is a one-element list, the usage-only
 * stream event stays out of the raw export, and input_config has genai-perf 0.0.16's shape
 * (fixtures/peers/genai-perf holds a real one to compare with).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { buildBody } from "../../loadgen/run-point.ts";
import { inputConfigBlock, profileExportJson } from "../../results/genai-perf/artifacts.ts";
import { pyJsonDumps } from "../../results/genai-perf/pyformat.ts";
import { isUsageOnlyEvent } from "../../results/genai-perf/sse.ts";
import { ROOT } from "./peers.ts";

const ev = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;

describe("raw export as genai-perf reads it", () => {
  it("completions bodies carry the prompt as a one-element list", () => {
    const b = buildBody({
      model: "m",
      messages: [{ role: "user", content: "hello there" }],
      endpointType: "completions",
      streaming: true,
    });
    assert.deepEqual(b["prompt"], ["hello there"]);
  });

  it("the usage-only event (choices: []) is left out, with its timestamp; text events stay", () => {
    const text = ev({ choices: [{ index: 0, text: " hi" }] });
    const usage = ev({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 1 } });
    assert.equal(isUsageOnlyEvent(usage), true);
    assert.equal(isUsageOnlyEvent(text), false);
    assert.equal(isUsageOnlyEvent("data: [DONE]\n\n"), false);
    // Two events in one response are not cut apart here (the writer splits events first).
    assert.equal(isUsageOnlyEvent(text + usage), false);
    const out = JSON.parse(
      profileExportJson({
        experiment: { mode: "concurrency", value: 1 },
        requests: [
          {
            timestamp: 1n,
            payload: "{}",
            responseTimestamps: [2n, 3n, 4n],
            responses: [text, usage, "data: [DONE]\n\n"],
          },
        ],
        windowBoundaries: [1n, 4n],
        endpoint: "v1/completions",
        version: "t",
      }),
    );
    const r = out.experiments[0].requests[0];
    assert.deepEqual(r.response_timestamps, [2, 4]);
    assert.deepEqual(
      r.response_outputs.map((o: { response: string }) => o.response),
      [text, "data: [DONE]\n\n"],
    );
  });
});

describe("input_config as genai-perf 0.0.16 writes it", () => {
  const real = JSON.parse(
    readFileSync(
      join(
        ROOT,
        "fixtures/peers/genai-perf/llama-3.1-8b-openai-completions-concurrency2/profile_export_genai_perf.json",
      ),
      "utf8",
    ),
  ).input_config;
  const ours = JSON.parse(
    pyJsonDumps(
      inputConfigBlock({
        models: ["llama-3.1-8b"],
        modelSelectionStrategy: "round_robin",
        endpointType: "completions",
        streaming: true,
        url: real.endpoint.url,
        concurrency: 2,
        warmupRequestCount: 0,
        requestCount: 10,
        syntheticInputTokensMean: 32,
        syntheticInputTokensStddev: 0,
        outputTokensMean: 16,
        outputTokensStddev: 0,
        numDatasetEntries: 100,
        randomSeed: 0,
        extraInputs: {},
        headers: {},
        goodput: {},
        artifactDirectory: real.output.artifact_directory,
        profileExportFile: "profile_export.json",
        generatePlots: false,
        tokenizer: real.tokenizer.name,
      }),
      2,
    ),
  );

  it("equals the real genai-perf run's input_config for the same flags", () => {
    assert.deepEqual(ours, real);
    assert.deepEqual(Object.keys(ours), Object.keys(real));
    assert.deepEqual(Object.keys(ours.endpoint), Object.keys(real.endpoint));
    assert.equal(ours.endpoint.backend, "tensorrtllm");
  });

  it("credential headers are redacted (genai-perf writes them in clear)", () => {
    const c = inputConfigBlock({
      ...({} as Parameters<typeof inputConfigBlock>[0]),
      models: ["m"],
      endpointType: "chat",
      headers: { Authorization: "Bearer sk-secret", "X-Trace": "abc" },
      extraInputs: {},
      goodput: {},
      profileExportFile: "p.json",
    });
    assert.deepEqual((c["input"] as Record<string, unknown>)["header"], [
      "Authorization:[REDACTED]",
      "X-Trace:abc",
    ]);
  });
});

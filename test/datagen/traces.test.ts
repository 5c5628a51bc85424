/**
 * Traces and dataset files are validated when loaded: time order, bounded gaps and span (a gap
 * past 24.8 days used to overflow Node's timers and hang the run), readable files named with
 * what named them, bounded rows; and the workload extent is what buildWorkload really sends.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  MAX_TRACE_GAP_MS,
  MAX_TRACE_SPAN_MS,
  parseInputFileJsonl,
  parseServeGenTrace,
} from "../../datagen/datasets.ts";
import { workloadExtent } from "../../datagen/extent.ts";
import { buildWorkload, STACK_DATASET_NAMES } from "../../datagen/workload.ts";
import { InputFileError } from "../../lib/errors.ts";
import type { DatasetPlan } from "../../stacks/plan-types.ts";

const dir = mkdtempSync(join(tmpdir(), "inferbench-datagen-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const opts = { tokenizer: "llama-3.1-8b", seed: 0, outputTokensStddev: 0 };

function refused(plan: DatasetPlan, re: RegExp, o: object = {}): InputFileError {
  try {
    buildWorkload(plan, { ...opts, ...o });
  } catch (err) {
    assert.ok(err instanceof InputFileError, `expected InputFileError, got ${String(err)}`);
    assert.equal(err.exitCode, 2);
    assert.match(err.message, re);
    return err;
  }
  assert.fail("expected a refusal");
}

const azure = (...stamps: string[]) =>
  `TIMESTAMP,ContextTokens,GeneratedTokens\n${stamps.map((t) => `${t},10,5`).join("\n")}\n`;

describe("trace time checks", () => {
  it("an out-of-order Azure trace is the file's fault, named by line", () => {
    const p = file(
      "back.csv",
      azure("2023-11-16 18:15:46.6", "2023-11-16 18:15:47.0", "2023-11-16 18:15:46.9"),
    );
    refused(
      { kind: "azure-trace", path: p, timeScale: 1 },
      /back\.csv:4: timestamp goes backwards.*line 3/,
    );
  });
  it("a gap longer than 24.8 days (Node's timer limit) is refused before anything waits", () => {
    const p = file("gap.csv", azure("2023-11-16 18:15:46", "2023-12-20 18:15:46"));
    const e = refused(
      { kind: "azure-trace", path: p, timeScale: 1 },
      /gap\.csv:3: 34\.0 days after line 2/,
    );
    assert.match(e.hint!, /--time-scale/);
  });
  it("the time scale applies before the bounds, and is named as the config key for stacks", () => {
    const p = file("gap2.csv", azure("2023-11-16 00:00:00", "2023-11-18 00:00:00"));
    refused({ kind: "azure-trace", path: p, timeScale: 1 }, /2\.0 days after line 2/, {
      names: STACK_DATASET_NAMES,
    });
    const ok = buildWorkload({ kind: "azure-trace", path: p, timeScale: 0.1 }, opts);
    assert.equal(ok.items[1]!.atMs, 0.1 * 2 * 86_400_000);
    try {
      buildWorkload(
        { kind: "azure-trace", path: p, timeScale: 1 },
        { ...opts, names: STACK_DATASET_NAMES },
      );
    } catch (err) {
      assert.match((err as InputFileError).hint!, /workload\.dataset\.timeScale/);
    }
  });
  it("the whole replay is bounded too", () => {
    const rows = Array.from({ length: 9 }, (_, i) =>
      JSON.stringify({ timestamp: i * 0.9 * MAX_TRACE_GAP_MS, input_length: 5 }),
    );
    const p = file("span.jsonl", `${rows.join("\n")}\n`);
    assert.ok(8 * 0.9 * MAX_TRACE_GAP_MS > MAX_TRACE_SPAN_MS);
    refused({ kind: "mooncake", path: p, timeScale: 1 }, /span\.jsonl:9: the replay would last/);
  });
  it("Mooncake rows out of order are refused, not sorted into a different trace", () => {
    const p = file(
      "mc.jsonl",
      '{"timestamp": 0, "input_length": 5}\n{"timestamp": 900, "input_length": 5}\n{"timestamp": 100, "input_length": 5}\n',
    );
    refused({ kind: "mooncake", path: p, timeScale: 1 }, /mc\.jsonl:3: timestamp goes backwards/);
  });
  it("some rows timestamped and some not is refused (it would silently stop being a trace)", () => {
    assert.throws(
      () => parseInputFileJsonl('{"timestamp": 0, "text": "a"}\n{"text": "b"}\n', "mix.jsonl"),
      /mix\.jsonl:2: row has no "timestamp" but line 1 has one/,
    );
  });
  it("ServeGen windows must increase and may not ask for millions of arrivals", () => {
    assert.throws(
      () => parseServeGenTrace("600,1,1,Gamma,1,0\n0,1,1,Gamma,1,0\n", "sg.csv"),
      /sg\.csv:2: window_start_s 0 is not after line 1's 600/,
    );
    const p = file("sgbig.csv", "0,5000,1,Gamma,1,0\n600,5000,1,Gamma,1,0\n");
    refused(
      { kind: "servegen", path: p, timeScale: 1 },
      /sgbig\.csv:1: .*expect ≈3,000,000 arrivals/,
    );
    // Capped by maxRequests it is fine.
    assert.equal(
      buildWorkload({ kind: "servegen", path: p, timeScale: 1, maxRequests: 50 }, opts).items
        .length,
      50,
    );
  });
  it("a row asking for 1e12 tokens is refused with the bound", () => {
    assert.throws(
      () => parseInputFileJsonl('{"input_length": 1000000000000}\n', "big.jsonl"),
      /big\.jsonl:1: "input_length" is 1000000000000; the most is 1,048,576/,
    );
  });
});

describe("dataset files", () => {
  it("missing, a directory: the file and what named it", () => {
    refused(
      { kind: "input-file", path: join(dir, "nope.jsonl") },
      /nope\.jsonl: does not exist \(the file named by workload\.dataset\.path\)/,
      {
        names: STACK_DATASET_NAMES,
      },
    );
    mkdirSync(join(dir, "adir.jsonl"));
    refused({ kind: "input-file", path: join(dir, "adir.jsonl") }, /adir\.jsonl: is a directory/);
  });
});

describe("workload extent", () => {
  it("is the longest prompt + max_tokens buildWorkload produces, over every seed", () => {
    const plan: DatasetPlan = {
      kind: "synthetic",
      inputTokensMean: 300,
      inputTokensStddev: 80,
      numDatasetEntries: 50,
    };
    const o = { tokenizer: "llama-3.1-8b", outputTokensMean: 40, outputTokensStddev: 10 };
    const ext = workloadExtent(plan, { ...o, seeds: [3, 1003] });
    let best = 0;
    for (const seed of [3, 1003]) {
      for (const it of buildWorkload(plan, { ...o, seed }).items)
        best = Math.max(best, it.islTokens! + it.maxTokens!);
    }
    assert.equal(ext.promptTokens + ext.outputTokens!, best);
  });
  it("file rows: names the line of the longest request", () => {
    const p = file(
      "rows.jsonl",
      '{"input_length": 5, "output_length": 2}\n{"input_length": 700, "output_length": 30}\n',
    );
    const ext = workloadExtent(
      { kind: "input-file", path: p },
      { tokenizer: "llama-3.1-8b", seeds: [0], outputTokensStddev: 0 },
    );
    assert.deepEqual([ext.promptTokens, ext.outputTokens], [700, 30]);
    assert.match(ext.source, /rows\.jsonl:2$/);
  });
});

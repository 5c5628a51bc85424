import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { validateConfig } from "../../stacks/config.ts";
import { PlanError, plan } from "../../stacks/plan.ts";
import {
  checkExtraArgs,
  ownedFlagIn,
  PLAN_OWNED_FLAGS,
  ShellWordsError,
  shellWords,
} from "../../stacks/vllm-args.ts";

describe("shell words", () => {
  it("splits like a POSIX shell without expansion", () => {
    assert.deepEqual(shellWords("--port 9000"), ["--port", "9000"]);
    assert.deepEqual(shellWords("  -tp\t2  "), ["-tp", "2"]);
    assert.deepEqual(shellWords(`--x '{"a": 1}' "b c" d\\ e`), ["--x", '{"a": 1}', "b c", "d e"]);
    assert.deepEqual(shellWords(`"a\\"b" ''`), ['a"b', ""]);
    assert.deepEqual(shellWords(""), []);
  });
  it("refuses unterminated quotes", () => {
    assert.throws(() => shellWords("--a 'b"), ShellWordsError);
    assert.throws(() => shellWords('--a "b'), ShellWordsError);
    assert.throws(() => shellWords("--a b\\"), ShellWordsError);
  });
});

describe("plan-owned flags, as vLLM's FlexibleArgumentParser reads them", () => {
  const owned = (w: string) => ownedFlagIn(w) !== undefined;
  it("every spelling of an owned flag", () => {
    for (const w of [
      "--port",
      "--port=9000",
      "--max-model-len",
      "--max_model_len=5",
      "--max_model-len",
      "--max-model-len.x",
      "-tp",
      "-tp=2",
      "-pp",
      "-dp",
      "-dpl",
      "-q",
      "-qawq",
      "-q=fp8",
      "--tensor_parallel_size",
      "--config",
      "--hf-token=x",
      "--no-enable-prefix-caching",
      "--enable_prefix_caching",
      "--uds",
    ])
      assert.ok(owned(w), w);
  });
  it("argparse abbreviations of owned flags (allow_abbrev)", () => {
    for (const w of [
      "--max-model",
      "--max-model-l=5",
      "--served",
      "--tensor-par",
      "-t",
      "-p",
      "-d",
    ])
      assert.ok(owned(w), w);
  });
  it("flags the plan does not own, values and negative numbers pass", () => {
    for (const w of [
      "--enforce-eager",
      "--seed",
      "-O3",
      "-O",
      "--model-impl",
      "--max-logprobs",
      "--kv-cache-dtype=fp8",
      "-dcp",
      "2",
      "-1",
      "-0.5",
      "fp8",
      "--",
      "--ports-are-fine-if-longer",
    ])
      assert.ok(!owned(w), w);
  });
  it("names the flag and what to set instead, never the value", () => {
    assert.match(
      ownedFlagIn("-tp")!,
      /--tensor-parallel-size \(as its alias -tp\).*models\[\]\.gpusPerReplica/,
    );
    assert.match(
      ownedFlagIn("--max_model_len=16")!,
      /--max-model-len \(written "--max_model_len"\)/,
    );
    assert.ok(!ownedFlagIn("--hf-token=hf_secret_value")!.includes("hf_secret_value"));
    for (const f of PLAN_OWNED_FLAGS) assert.ok(owned(f.long), f.long);
  });
  it("one element holding several words; nothing after --", () => {
    const r = checkExtraArgs(["--enforce-eager", "--port 9000", "--seed 1 -tp 2", "-- --port"]);
    assert.deepEqual(
      r.problems.map((p) => p.index),
      [1, 2],
    );
    assert.deepEqual(r.words, [
      "--enforce-eager",
      "--port",
      "9000",
      "--seed",
      "1",
      "-tp",
      "2",
      "--",
      "--port",
    ]);
  });
});

describe("the plan", () => {
  const cfg = (extraArgs: string[]) =>
    validateConfig(
      {
        target: "local",
        mode: "baseline",
        models: [{ name: "a", hfPath: "org/a-8B", profile: "llama-3.1-8b@h100", extraArgs }],
        gpus: { count: 1 },
      },
      "t.yaml",
    );
  it("passes allowed extraArgs on as separate words", () => {
    const p = plan("t", cfg(["--enforce-eager --seed 7", "--kv-cache-dtype=fp8"]));
    assert.deepEqual(p.engines[0]!.args.slice(-4), [
      "--enforce-eager",
      "--seed",
      "7",
      "--kv-cache-dtype=fp8",
    ]);
  });
  it("refuses -tp 2 and a quoted --port 9000 at their extraArgs index", () => {
    assert.throws(
      () => plan("t", cfg(["--enforce-eager", "-tp 2", "--port 9000"])),
      (e: unknown) =>
        e instanceof PlanError &&
        /models\[0\]\.extraArgs\[1\]: sets --tensor-parallel-size/.test(e.message) &&
        /models\[0\]\.extraArgs\[2\]: sets --port/.test(e.message),
    );
  });
});

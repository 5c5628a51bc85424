/**
 * Issue 19 (robustness and trust) for stack files: every refusal names file:line:column and the
 * config path, never a stack trace and never a secret.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { UserError } from "../../lib/errors.ts";
import {
  loadStack,
  loadStackText,
  MAX_STACK_FILE_BYTES,
  StackConfigError,
} from "../../stacks/config.ts";
import { PlanError } from "../../stacks/plan.ts";
import { planStack } from "../../targets/plan-stack.ts";

const dir = mkdtempSync(join(tmpdir(), "inferbench-robust-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const GOOD = `config:
  inferbench:target: local
  inferbench:mode: baseline
  inferbench:models:
    - name: llama-3.1-8b
      hfPath: meta-llama/Llama-3.1-8B-Instruct
      maxModelLen: 8192
      profile: llama-3.1-8b@h100
  inferbench:gpus:
    count: 1
  inferbench:workload:
    dataset:
      kind: synthetic
      inputTokensMean: 550
    outputTokensMean: 128
`;

function refusal(fn: () => unknown): UserError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
    assert.equal(err.exitCode, 2);
    assert.doesNotMatch(err.message, /\n\s+at /, "no stack trace in the message");
    return err;
  }
  assert.fail("expected a refusal");
}

const load = (text: string, overrides: string[] = [], env: NodeJS.ProcessEnv = {}) =>
  refusal(() => loadStackText(text, "Pulumi.t.yaml", "t", { overrides, env }));

function plan(name: string, text: string, overrides: string[] = []) {
  writeFileSync(join(dir, `Pulumi.${name}.yaml`), text);
  return planStack(name, overrides, { stacksDir: dir, env: {} });
}

describe("positions: file:line:column and the config path", () => {
  it("a schema error names line and column of the key", () => {
    const e = load(GOOD.replace("maxModelLen: 8192", "maxModelLen: lots"));
    assert.match(e.message, /Pulumi\.t\.yaml:7:7: models\[0\]\.maxModelLen: expected number/);
  });
  it("a YAML syntax error names its line and column (the yaml library gives none by itself)", () => {
    const e = load(`${GOOD}  inferbench:slo:\n    ttftMs: [1\n    itlMs: 2\n`);
    assert.match(e.message, /Pulumi\.t\.yaml:18:5: slo\.itlMs: YAML syntax error: /);
  });
  it("a tab in the indentation", () => {
    const e = load("config:\n\tinferbench:target: local\n");
    assert.match(e.message, /Pulumi\.t\.yaml:2:1: .*Tabs are not allowed/);
  });
  it("a key that is not in the file points at its parent, a missing one at config:", () => {
    const e = load(GOOD.replace("  inferbench:mode: baseline\n", ""));
    assert.match(e.message, /Pulumi\.t\.yaml:1:1: mode: expected one of "baseline", "managed"/);
  });
  it("a plan refusal is mapped back to the key it is about", () => {
    const e = refusal(() =>
      plan("pr", GOOD.replace("count: 1", "count: 1\n    ids: [3]").replace("gpus:", "gpus:")),
    );
    assert.ok(e instanceof PlanError);
    assert.match(e.message, /Pulumi\.pr\.yaml:11:5: gpus\.ids: GPU ids 3 do not exist/);
  });
  it("a plan refusal about a --set value says --set", () => {
    const e = refusal(() => plan("ps", GOOD, ["router.port=8001"]));
    assert.match(e.message, /--set: router\.port: 8001 is also the port of engine/);
  });
});

describe("maxModelLen against the workload's longest request", () => {
  it("refuses maxModelLen 16 for 550-token prompts, naming both numbers and the position", () => {
    const e = refusal(() => plan("ml", GOOD.replace("maxModelLen: 8192", "maxModelLen: 16")));
    assert.match(
      e.message,
      /Pulumi\.ml\.yaml:7:7: models\[0\]\.maxModelLen: 16 is below the workload's longest request: 550 prompt tokens \+ 128 output tokens = 678/,
    );
  });
  it("accepts a maxModelLen that just fits", () => {
    assert.ok(plan("fit", GOOD.replace("maxModelLen: 8192", "maxModelLen: 678")).plan);
  });
  it("multi-round QA: the last round carries the whole history", () => {
    const mrq = GOOD.replace(
      "      kind: synthetic\n      inputTokensMean: 550\n",
      "      kind: multi-round-qa\n      users: 2\n      rounds: 4\n      systemPromptTokens: 100\n      questionTokens: 50\n      answerTokens: 25\n",
    ).replace("maxModelLen: 8192", "maxModelLen: 300");
    // 100 + 4 × 50 + 3 × 25 = 375 prompt tokens, + 25 = 400.
    assert.match(
      refusal(() => plan("mrq", mrq)).message,
      /375 prompt tokens \+ 25 output tokens = 400/,
    );
  });
  it("random lengths: measured on the prompts the run will draw", () => {
    const rnd = GOOD.replace(
      "inputTokensMean: 550",
      "inputTokensMean: 550\n      inputTokensStddev: 100",
    ).replace("maxModelLen: 8192", "maxModelLen: 700");
    const e = refusal(() => plan("rnd", rnd));
    const m = /(\d+) prompt tokens \+ 128 output tokens = (\d+)/.exec(e.message);
    assert.ok(m && Number(m[1]) > 572, e.message);
  });
});

describe("inputs that used to end in a stack trace", () => {
  it("the stack file is a directory", () => {
    mkdirSync(join(dir, "Pulumi.isdir.yaml"));
    const e = refusal(() => loadStack("isdir", { dir }));
    assert.match(e.message, /Pulumi\.isdir\.yaml is a directory, not a stack file/);
  });
  it("an oversized stack file", () => {
    writeFileSync(join(dir, "Pulumi.huge.yaml"), `# ${"x".repeat(MAX_STACK_FILE_BYTES)}\n`);
    assert.match(
      refusal(() => loadStack("huge", { dir })).message,
      /may be at most 1,048,576 bytes/,
    );
  });
  it("a YAML alias bomb is capped", () => {
    const bomb = `config:\n  a: &a [x, x, x, x, x, x, x, x, x]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n  d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n`;
    const e = load(bomb);
    assert.ok(e instanceof StackConfigError);
    assert.match(e.message, /Pulumi\.t\.yaml:3:\d+: b: YAML aliases expand more than 100 times/);
  });
  it("an unresolved alias", () => {
    assert.match(
      load("config:\n  target: *nowhere\n").message,
      /:2:11: target: YAML alias error: Unresolved alias/,
    );
  });
  it("--set __proto__.x=1 is refused and pollutes nothing", () => {
    for (const set of ["__proto__.x=1", "constructor.prototype.x=1", "models[0].__proto__.x=1"]) {
      assert.match(load(GOOD, [set]).message, /is not a config key .*prototypes/);
    }
    assert.match(
      load(GOOD, ["engine.env={__proto__: {x: 1}}"]).message,
      /holds the key "__proto__"/,
    );
    assert.equal(({} as Record<string, unknown>).x, undefined);
  });
  it("a __proto__ key in the file is refused at its position", () => {
    const e = load(`${GOOD}  inferbench:engine:\n    __proto__:\n      polluted: 1\n`);
    assert.match(
      e.message,
      /Pulumi\.t\.yaml:17:5: engine\.__proto__: key "__proto__" is not allowed/,
    );
  });
  it("one key written twice, bare and namespaced", () => {
    assert.match(load(`${GOOD}  target: gcp-vm\n`).message, /:16:3: target: set twice/);
  });
  it("a misspelt namespace is not silently handed to Pulumi providers", () => {
    assert.match(
      load(`${GOOD}  inferbnch:gpus: {count: 2}\n`).message,
      /did you mean "inferbench:gpus"/,
    );
  });
});

describe("secrets never appear in a message", () => {
  const SECRET = "notatoken-SECRET-42";
  for (const [what, yaml] of [
    ["a list", `[${SECRET}]`],
    ["a mapping without secure", `{plain: ${SECRET}}`],
    ["secure holding a number", `{secure: 12345678, note: ${SECRET}}`],
    ["a number", "424242424242"],
    ["an empty string", '""'],
  ] as const) {
    it(`hfToken as ${what}`, () => {
      const e = load(`${GOOD}  inferbench:hfToken: ${yaml}\n`);
      assert.match(
        e.message,
        /hfToken: (expected a non-empty string, or \{secure: <ciphertext>\}|Too small: expected string to have >=1 characters)/,
      );
      assert.match(e.message, /the value is not shown: it is a secret|found an empty string/);
      assert.ok(!e.message.includes(SECRET) && !e.message.includes("424242"), e.message);
    });
  }
  it("kubeconfig.content and secret-named env values", () => {
    const e = load(`${GOOD}  inferbench:kubeconfig:\n    content: [${SECRET}]\n`);
    assert.ok(!e.message.includes(SECRET), e.message);
    const env = load(`${GOOD}  inferbench:engine:\n    env:\n      HF_TOKEN: [${SECRET}]\n`);
    assert.ok(!env.message.includes(SECRET), env.message);
  });
  it("through --set, and a --set without '=' is not echoed", () => {
    assert.ok(!load(GOOD, [`hfToken=[${SECRET}]`]).message.includes(SECRET));
    assert.ok(!load(GOOD, [`hfToken:${SECRET}`]).message.includes(SECRET));
  });
  it("an extraArgs --hf-token is refused by name, its value not echoed", () => {
    const e = refusal(() =>
      plan(
        "tok",
        GOOD.replace("profile: llama", `extraArgs: ["--hf-token ${SECRET}"]\n      profile: llama`),
      ),
    );
    assert.match(e.message, /extraArgs\[0\]: sets --hf-token/);
    assert.ok(!e.message.includes(SECRET), e.message);
  });
});

describe("bounded counts name the bound", () => {
  for (const [key, value, bound] of [
    ["requestCount", "1000000000000", "1,000,000"],
    ["outputTokensStddev", "1e12", "1,048,576"],
    ["minTokens", "2000000", "1,048,576"],
  ] as const) {
    it(`workload.${key}: ${value}`, () => {
      const e = load(
        GOOD.replace("outputTokensMean: 128", `outputTokensMean: 128\n    ${key}: ${value}`),
      );
      assert.match(e.message, new RegExp(`workload\\.${key}: must be ≤ ${bound}`));
    });
  }
  it("the tokens a synthetic dataset would hold", () => {
    const e = load(
      GOOD.replace(
        "inputTokensMean: 550",
        "inputTokensMean: 100000\n      numDatasetEntries: 1000",
      ),
    );
    assert.match(
      e.message,
      /workload\.dataset\.numDatasetEntries: the dataset would hold ≈100,000,000 tokens/,
    );
  });
});

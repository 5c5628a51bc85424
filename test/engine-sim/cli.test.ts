import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Command } from "commander";
import { registerServeEngineSim } from "../../cli/commands/serve-engine-sim.ts";
import { InputFileError, UserError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/logger.ts";
import { coreConfigFromProfile, EngineCore } from "../../services/engine-sim/core.ts";
import { StepLoop } from "../../services/engine-sim/loop.ts";
import { LagStats } from "../../services/engine-sim/metrics.ts";
import {
  configureEngineSimCommand,
  enginesFromPlan,
  resolveEngineSimOptions,
} from "../../services/engine-sim/options.ts";
import { ENGINE_PROFILES } from "../../services/engine-sim/profiles.ts";

const engine = (name: string, host: string, profile = "llama-3.1-8b@h100") => ({
  name,
  host,
  model: name,
  hfPath: "meta-llama/Llama-3.1-8B-Instruct",
  gpus: [0],
  port: 8001,
  kvcached: true,
  prefixCaching: false,
  maxModelLen: 8192,
  maxNumSeqs: 256,
  maxNumBatchedTokens: 8192,
  emulator: { profile, startupDelaySec: 5, maxCachedTokens: 0 },
});

describe("serve engine-sim --plan", () => {
  it("selects one host's engines", () => {
    const plan = JSON.stringify({
      engines: [engine("a", "h0"), engine("b", "h1"), engine("c", "h0")],
    });
    assert.deepEqual(
      enginesFromPlan("p.json", plan, "h0").map((e) => e.name),
      ["a", "c"],
    );
    assert.throws(() => enginesFromPlan("p.json", plan, undefined), UserError);
    assert.throws(() => enginesFromPlan("p.json", plan, "h9"), /no engines on host "h9"/);
  });

  it("rejects bad plans with the file named", () => {
    assert.throws(() => enginesFromPlan("p.json", "{", undefined), InputFileError);
    assert.throws(
      () => enginesFromPlan("p.json", JSON.stringify({ engines: [] }), undefined),
      /p\.json/,
    );
    assert.throws(
      () =>
        enginesFromPlan(
          "p.json",
          JSON.stringify({ engines: [engine("a", "h", "gpt@tpu")] }),
          undefined,
        ),
      /unknown engine-sim profile "gpt@tpu"/,
    );
  });

  it("resolves vLLM spellings and --plan-host from --host", () => {
    const single = resolveEngineSimOptions({
      profile: "llama-3.1-8b@h100",
      servedModelName: "m",
      enablePrefixCaching: false,
      port: "0",
    });
    assert.equal(single.engines[0]!.model, "m");
    assert.equal(single.engines[0]!.prefixCaching, false);
    assert.equal(single.bind, "127.0.0.1");
    assert.equal(single.faults, undefined);
    assert.throws(() => resolveEngineSimOptions({ profile: "x", seed: "-1" }), /--seed:/);
  });

  it("the CLI command is the service's own (same flags, same help)", () => {
    const viaCli = new Command().exitOverride();
    registerServeEngineSim(viaCli.command("serve"));
    const cliCmd = viaCli.commands[0]!.commands.find((c) => c.name() === "engine-sim")!;
    const own = configureEngineSimCommand(new Command("engine-sim"));
    assert.deepEqual(
      cliCmd.options.map((o) => o.flags),
      own.options.map((o) => o.flags),
    );
    assert.ok(own.options.some((o) => o.long === "--max-model-len"));
  });

  it("validates flags before starting anything", async () => {
    const program = new Command().exitOverride();
    registerServeEngineSim(program.command("serve"));
    const run = (...args: string[]) =>
      program.parseAsync(["serve", "engine-sim", ...args], { from: "user" });
    await assert.rejects(run("--port", "1"), /exactly one of --profile/);
    await assert.rejects(run("--profile", "nope@x"), /unknown profile "nope@x"/);
    await assert.rejects(run("--profile", "llama-3.1-8b@h100", "--port", "99999"), /--port/);
    await assert.rejects(run("--profile", "llama-3.1-8b@h100", "--faults", "{bad"), /--faults/);
    await assert.rejects(
      run("--profile", "llama-3.1-8b@h100", "--kvcached", "--gpu-memory-utilization", "0.5"),
      /does not apply with --kvcached/,
    );
  });
});

describe("step loop timing honesty", () => {
  it("records lag and warns when steps start late", async () => {
    const p = ENGINE_PROFILES["llama-3.1-8b@h100"]!;
    const core = new EngineCore(
      coreConfigFromProfile(p, {
        numBlocks: 1000,
        blockBytes: p.kvBytesPerToken * 16,
        prefixCaching: false,
      }),
    );
    // A clock that jumps 100 ms per reading: every step looks 100 ms late.
    let t = 0;
    const now = () => {
      t += 0.1;
      return t;
    };
    const warnings: string[] = [];
    const lag = new LagStats();
    let finished = false;
    const loop = new StepLoop(core, {
      now,
      lag,
      log: createLogger("t", (l) => warnings.push(l)),
      onStep: (r) => {
        if (r.events.some((e) => e.finish)) finished = true;
      },
    });
    core.addRequest({
      id: "a",
      promptTokens: [1, 2, 3],
      outputLen: 3,
      finishReason: "length",
      arrival: now(),
    });
    loop.kick();
    for (let i = 0; i < 200 && !finished; i++) await new Promise((r) => setImmediate(r));
    loop.close();
    assert.ok(finished);
    assert.ok(lag.max > 0.05, String(lag.max));
    assert.ok(warnings.some((w) => /late/.test(w)));
  });
});

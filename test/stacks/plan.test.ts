import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { loadStack, validateConfig } from "../../stacks/config.ts";
import { engineName, PlanError, plan } from "../../stacks/plan.ts";
import type { StackPlan } from "../../stacks/plan-types.ts";
import type { StackConfigInput } from "../../stacks/schema.ts";

const SHIPPED = [
  "local",
  "gcp-baseline",
  "gcp-managed",
  "gke-baseline",
  "gke-managed",
  "vke-baseline",
  "vke-managed",
];

function planOf(input: StackConfigInput, name = "t"): StackPlan {
  return plan(name, validateConfig(input as Record<string, unknown>, "test.yaml"));
}

const small = (
  name: string,
  replicas = 1,
  extra: Partial<StackConfigInput["models"][number]> = {},
) => ({
  name,
  hfPath: `org/${name}-8B`,
  replicas,
  profile: "llama-3.1-8b@h100",
  ...extra,
});

describe("shipped stacks", () => {
  for (const stack of SHIPPED) {
    it(`${stack} loads and plans the reference layout on GPUs 0-5`, () => {
      const { config } = loadStack(stack);
      const p = plan(stack, config);
      assert.equal(p.engines.length, 6);
      assert.deepEqual(
        p.engines.map((e) => e.gpus),
        [[0], [1], [2], [3], [4], [5]],
      );
      assert.deepEqual(Object.keys(p.router.backends), [
        "llama-3.1-8b",
        "qwen2.5-7b",
        "llama-3.3-70b-awq",
      ]);
      assert.equal(p.emulated, stack === "local");
    });
  }

  it("gcp-managed: KVCached environment, no --gpu-memory-utilization, least-busy router", () => {
    const p = plan("gcp-managed", loadStack("gcp-managed").config);
    assert.equal(p.router.policy, "least-busy");
    const ipcNames = new Set<string>();
    for (const e of p.engines) {
      assert.equal(e.env.ENABLE_KVCACHED, "true");
      assert.equal(e.env.KVCACHED_AUTOPATCH, "1");
      assert.ok(e.env.KVCACHED_IPC_NAME);
      ipcNames.add(e.env.KVCACHED_IPC_NAME!);
      assert.ok(!e.args.includes("--gpu-memory-utilization"));
      assert.equal(e.gpuMemoryUtilization, undefined);
    }
    assert.equal(ipcNames.size, p.engines.length, "a distinct KVCACHED_IPC_NAME per engine");
    assert.ok(p.cost && p.cost.hourly > 0 && p.cost.estimate);
  });

  it("gcp-baseline: vanilla image, round-robin, --gpu-memory-utilization set", () => {
    const p = plan("gcp-baseline", loadStack("gcp-baseline").config);
    assert.equal(p.router.policy, "round-robin");
    for (const e of p.engines) {
      assert.match(e.image, /^vllm\/vllm-openai.*@sha256:[0-9a-f]{64}$/);
      assert.equal(e.env.ENABLE_KVCACHED, undefined);
      assert.equal(e.args[e.args.indexOf("--gpu-memory-utilization") + 1], "0.9");
    }
  });

  it("the 70B AWQ model carries its quantization flag", () => {
    const p = plan("local", loadStack("local").config);
    const e = p.engines.find((x) => x.model === "llama-3.3-70b-awq")!;
    assert.equal(e.args[e.args.indexOf("--quantization") + 1], "awq_marlin");
  });
});

describe("plan refuses impossible plans with a reason", () => {
  const base: StackConfigInput = {
    target: "local",
    mode: "baseline",
    models: [small("a", 2)],
    gpus: { count: 2 },
  };

  it("more GPUs than the host has", () => {
    assert.throws(
      () =>
        planOf({
          ...base,
          target: "gcp-vm",
          gcp: { sshSourceRanges: ["1.2.3.4/32"] },
          gpus: { count: 9 },
        }),
      (e: unknown) => e instanceof PlanError && /uses 9 GPUs but the host has 8/.test(e.message),
    );
  });

  it("dedicated placement needing more GPUs than planned", () => {
    assert.throws(
      () => planOf({ ...base, models: [small("a", 3)] }),
      (e: unknown) => e instanceof PlanError && /needs 3 GPUs .* has 2/.test(e.message),
    );
  });

  it("weights that do not fit the GPU", () => {
    assert.throws(
      () =>
        planOf({
          ...base,
          models: [{ ...small("big"), hfPath: "meta-llama/Llama-3.3-70B-Instruct" }],
        }),
      (e: unknown) =>
        e instanceof PlanError && /big-0 .* needs ≈\d+\.\d GiB of weights/.test(e.message),
    );
  });

  it("a 70B BF16 model fits when spread over 2 GPUs", () => {
    const p = planOf({
      ...base,
      models: [{ ...small("big"), hfPath: "meta-llama/Llama-3.3-70B-Instruct", gpusPerReplica: 2 }],
    });
    assert.deepEqual(p.engines[0]!.gpus, [0, 1]);
    assert.ok(p.engines[0]!.args.join(" ").includes("--tensor-parallel-size 2"));
  });

  it("duplicate ports (router on an engine port)", () => {
    assert.throws(
      () => planOf({ ...base, router: { port: 8002 } }),
      (e: unknown) =>
        e instanceof PlanError &&
        /router\.port: 8002 is also the port of engine a-1/.test(e.message),
    );
  });

  it("extra args that fight the plan", () => {
    assert.throws(
      () => planOf({ ...base, models: [small("a", 1, { extraArgs: ["--port=9000"] })] }),
      (e: unknown) =>
        e instanceof PlanError &&
        /models\[0\]\.extraArgs\[0\]: sets --port, which the plan controls/.test(e.message),
    );
  });

  it("unknown emulator profile when profiles are known", () => {
    const config = validateConfig(
      { ...base, models: [small("a", 1, { profile: "llama-3.1-8b@h10" })] },
      "t.yaml",
    );
    assert.throws(
      () => plan("t", config, { knownProfiles: ["llama-3.1-8b@h100"] }),
      (e: unknown) => e instanceof PlanError && /did you mean "llama-3.1-8b@h100"/.test(e.message),
    );
  });

  it("packed placement without KVCached is a warning, with static slices", () => {
    const p = planOf({ ...base, placement: "packed", models: [small("a", 2), small("b", 2)] });
    assert.ok(p.warnings.some((w) => /packed placement without KVCached/.test(w)));
    assert.equal(p.engines.filter((e) => e.gpus[0] === 0).length, 2);
    for (const e of p.engines) assert.equal(e.gpuMemoryUtilization, 0.45);
    const managed = planOf({
      ...base,
      mode: "managed",
      placement: "packed",
      models: [small("a", 2), small("b", 2)],
    });
    assert.ok(!managed.warnings.some((w) => /packed placement/.test(w)));
  });

  it("packed KVCached GPU overfull", () => {
    assert.throws(
      () =>
        planOf({
          ...base,
          mode: "managed",
          gpus: { count: 1 },
          placement: "packed",
          models: [small("a", 1, { weightsGiB: 40 }), small("b", 1, { weightsGiB: 40 })],
        }),
      (e: unknown) =>
        e instanceof PlanError && /GPU 0: the weights of its 2 engine/.test(e.message),
    );
  });
});

describe("engine names", () => {
  it("are DNS-1035 labels", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,46}[a-z0-9]$/),
        fc.nat(99),
        (model, r) => {
          assert.match(engineName(model, r), /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/);
        },
      ),
    );
  });
});

// Random stacks: a few small models on 1-8 GPUs, either placement, either arm.
const arbStack = fc.record({
  models: fc.uniqueArray(
    fc.record({
      name: fc.constantFrom("m-a", "m-b", "m-c", "m-d"),
      replicas: fc.integer({ min: 1, max: 3 }),
      gpusPerReplica: fc.constantFrom(1, 1, 2),
      params: fc.constantFrom(1, 3, 7, 8, 13, 34),
    }),
    { minLength: 1, maxLength: 4, selector: (m) => m.name },
  ),
  count: fc.integer({ min: 1, max: 8 }),
  placement: fc.constantFrom("dedicated" as const, "packed" as const),
  mode: fc.constantFrom("baseline" as const, "managed" as const),
});

type ArbStack = typeof arbStack extends fc.Arbitrary<infer T> ? T : never;

function toInput(s: ArbStack, mode = s.mode): StackConfigInput {
  return {
    target: "local",
    mode,
    placement: s.placement,
    gpus: { count: s.count },
    models: s.models.map((m) => ({
      name: m.name,
      hfPath: `org/model-${m.params}B`,
      replicas: m.replicas,
      gpusPerReplica: m.gpusPerReplica,
      profile: "llama-3.1-8b@h100",
    })),
  };
}

function tryPlan(input: StackConfigInput): StackPlan | undefined {
  try {
    return planOf(input);
  } catch (e) {
    if (e instanceof PlanError) return undefined;
    throw e;
  }
}

describe("plan properties", () => {
  it("dedicated placement uses each GPU at most once; every model has a backend; ports unique", () => {
    let planned = 0;
    fc.assert(
      fc.property(arbStack, (s) => {
        const p = tryPlan(toInput(s));
        if (!p) return;
        planned++;
        if (s.placement === "dedicated") {
          const used = p.engines.flatMap((e) => e.gpus);
          assert.equal(new Set(used).size, used.length);
        }
        for (const m of s.models) assert.ok((p.router.backends[m.name] ?? []).length >= 1);
        const ports = [p.router.port, ...p.engines.map((e) => e.port)];
        assert.equal(new Set(ports).size, ports.length);
        for (const e of p.engines)
          for (const g of e.gpus) assert.ok(p.hosts[0]!.gpuIds.includes(g));
      }),
      { numRuns: 300 },
    );
    assert.ok(planned > 50, `too few random stacks were plannable (${planned})`);
  });

  it("baseline and managed plans of one stack differ only in engine image/env/flags and router policy", () => {
    fc.assert(
      fc.property(arbStack, (s) => {
        const b = tryPlan(toInput(s, "baseline"));
        const m = tryPlan(toInput(s, "managed"));
        if (!b || !m) return;
        const strip = (p: StackPlan) => ({
          ...p,
          mode: undefined,
          warnings: undefined,
          router: { ...p.router, policy: undefined },
          engines: p.engines.map((e) => ({
            ...e,
            image: undefined,
            build: undefined,
            env: undefined,
            args: undefined,
            kvcached: undefined,
            gpuMemoryUtilization: undefined,
            prefixCaching: undefined,
            emulator: { ...e.emulator, maxCachedTokens: undefined },
          })),
        });
        assert.deepEqual(strip(b), strip(m));
        assert.equal(b.router.policy, "round-robin");
        assert.equal(m.router.policy, "least-busy");
      }),
      { numRuns: 200 },
    );
  });
});

describe("router policy per arm", () => {
  const base: StackConfigInput = {
    target: "local",
    mode: "baseline",
    models: [small("a", 2)],
    gpus: { count: 2 },
  };
  it("a per-arm setting changes only that arm", () => {
    const router = { policy: { managed: "prefix-aware" as const } };
    assert.equal(planOf({ ...base, router }).router.policy, "round-robin");
    assert.equal(planOf({ ...base, mode: "managed", router }).router.policy, "prefix-aware");
  });
  it("a single policy applies to both arms", () => {
    assert.equal(planOf({ ...base, router: { policy: "session" } }).router.policy, "session");
  });
});

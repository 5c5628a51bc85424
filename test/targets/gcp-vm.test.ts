/**
 * gcp-vm through the one run path, against a fake Automation API and a real SSH server on loopback
 * whose "docker" is real too where it matters: `compose up` starts the arm's engine-sim + router
 * from the uploaded bundle, and `compose run runner` runs the real runner (`runArm`) on the
 * uploaded experiment.json, writing into the project's results folder on the "host". So the run
 * folder that comes home is made by the same code as a local run's — and the test compares them.
 * Orchestration: destroy after success, failure and Ctrl-C; zone fallback; retries; --keep.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { type ExperimentOptions, runExperiment } from "../../experiments/execute.ts";
import { experimentPlan } from "../../experiments/plan.ts";
import type { LeftoverResource } from "../../infra/audit.ts";
import type { AutomationApi, ConfigEntry, StackOps } from "../../infra/automation.ts";
import { UserError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/logger.ts";
import type { RemoteHost } from "../../lib/ssh/ssh.ts";
import { connectSsh } from "../../lib/ssh/ssh.ts";
import { RunStore } from "../../results/store.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import {
  classifyUpError,
  type GcpVmDeps,
  gcpVmTarget,
  gpuQuotaNames,
  runDeadline,
} from "../../targets/gcp-vm/index.ts";
import type { TokenState } from "../../targets/gcp-vm/preflight/index.ts";
import { localTarget } from "../../targets/local/index.ts";
import { planStack } from "../../targets/plan-stack.ts";
import type { TargetContext } from "../../targets/types.ts";
import { type FakeDockerHost, fakeDockerHost } from "../../testkit/fake-docker-host.ts";
import { startSshServer, type TestSshServer } from "../../testkit/ssh-server.ts";

const PINNED = `ghcr.io/ovg-project/kvcached-vllm@sha256:${"e".repeat(64)}`;
/** A small workload on the gcp stacks: one model, two replicas, two points, few requests. */
const SMALL = [
  "models=[{name: llama-3.1-8b, hfPath: meta-llama/Llama-3.1-8B-Instruct, replicas: 2, maxModelLen: 8192, profile: llama-3.1-8b@h100}]",
  "gpus.count=2",
  "workload.loadPoints=[{concurrency: 2}, {concurrency: 4}]",
  "workload.requestCount=8",
  "workload.outputTokensMean=16",
  "workload.outputTokensStddev=0",
  "workload.dataset={kind: synthetic, inputTokensMean: 64, numDatasetEntries: 20}",
  "run.warmupRequests=1",
  "engine.emulatorStartupDelaySec=0",
  `engine.images.managed=${PINNED}`,
  "gcp.project=test-proj",
  "gcp.zones=[us-central1-a,us-central1-b]",
];

interface FakeBehaviour {
  upErrors?: string[];
  upWaitsForAbort?: boolean;
  destroyFailures?: number;
  leftovers?: LeftoverResource[];
}

class FakeStack implements StackOps {
  calls: string[] = [];
  config = new Map<string, ConfigEntry>();
  constructor(
    readonly name: string,
    private b: FakeBehaviour,
  ) {}
  async getConfig(key: string) {
    return this.config.get(key);
  }
  async setConfig(entries: Record<string, ConfigEntry>) {
    for (const [k, v] of Object.entries(entries)) this.config.set(k, v);
  }
  upOpts: { signal?: AbortSignal; hardSignal?: AbortSignal }[] = [];
  async up(o: { signal?: AbortSignal; hardSignal?: AbortSignal } = {}) {
    this.upOpts.push(o);
    this.calls.push(`up:${this.config.get("zone")?.value}`);
    if (this.b.upWaitsForAbort)
      await new Promise((_r, rej) =>
        o.signal?.addEventListener("abort", () => rej(new Error("update canceled"))),
      );
    const err = this.b.upErrors?.shift();
    if (err) throw new Error(err);
    return {
      externalIp: "127.0.0.1",
      sshUser: "inferbench",
      instance: "vm",
      sshCommand: "ssh …",
      createdAt: "2026-12-01T03:58:00.123-08:00",
    };
  }
  async outputs() {
    return {};
  }
  async cancel() {
    this.calls.push("cancel");
  }
  async refresh() {
    this.calls.push("refresh");
  }
  async destroy() {
    this.calls.push("destroy");
    if ((this.b.destroyFailures ?? 0) > 0) {
      this.b.destroyFailures!--;
      throw new Error("destroy failed");
    }
  }
  async remove() {
    this.calls.push("remove");
  }
}

/** Relative paths of every file under dir (sorted). */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
}

/** Two shapes as one: the keys of both, arrays of objects merged, an "array" below an object one. */
function unionShape(a: unknown, b: unknown): unknown {
  if (Array.isArray(a) && Array.isArray(b)) return [unionShape(a[0], b[0])];
  if (Array.isArray(a) && b === "array") return a;
  if (a === "array" && Array.isArray(b)) return b;
  if (a && b && typeof a === "object" && typeof b === "object") {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b as Record<string, unknown>))
      out[k] = k in out ? unionShape(out[k], v) : v;
    return Object.fromEntries(Object.entries(out).sort(([x], [y]) => x.localeCompare(y)));
  }
  return a;
}

/** The shape of a JSON value: keys and types, not values. */
// Keys a side has only when its data does: a point that lagged on a loaded machine has an
// invalidReason, a side with no streamed multi-token answer has no ITL. Two runs may differ there.
const DATA_DEPENDENT = new Set(["invalidReason", "itlMs", "ttftMs"]);

function shape(v: unknown, depth = Number.POSITIVE_INFINITY): unknown {
  if (depth <= 0) return typeof v;
  if (v === null) return "null";
  if (Array.isArray(v)) {
    // Arrays of values (reasons, series) may be empty on one side: only object elements have a
    // shape, and it is the union over all of them (a row whose point lagged has no deltas, the
    // row after it has).
    const objects = v.filter((x) => x !== null && typeof x === "object" && !Array.isArray(x));
    return objects.length ? [objects.map((x) => shape(x, depth - 1)).reduce(unionShape)] : "array";
  }
  if (v && typeof v === "object")
    return Object.fromEntries(
      Object.keys(v)
        .filter((k) => !DATA_DEPENDENT.has(k))
        .sort()
        .map((k) => [k, shape((v as Record<string, unknown>)[k], depth - 1)]),
    );
  return typeof v;
}

describe("gcp-vm through the one run path", () => {
  let srv: TestSshServer;
  let root: string;
  let stack: FakeStack;
  let audits: number;
  let logLines: string[];
  let fake: FakeDockerHost;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "ib-gcpvm-"));
    srv = await startSshServer(join(root, "remote"));
    // The fake host's docker: compose projects are local engine-sim + router processes.
    fake = fakeDockerHost(srv, root);
  });
  after(async () => {
    await fake.stopAll();
    await srv.close();
    await rm(root, { recursive: true, force: true });
  });
  beforeEach(() => {
    audits = 0;
    logLines = [];
    fake.onRunner = undefined;
    fake.runnerExit = 0;
  });

  function deps(b: FakeBehaviour = {}): Partial<GcpVmDeps> {
    const automation: AutomationApi = {
      async stack(_workDir, name) {
        stack = new FakeStack(name, b);
        // Keys as preflight would have stored them: the loopback server's host and client keys.
        await stack.setConfig({
          sshPrivateKey: { value: srv.clientPrivateKey, secret: true },
          sshGeneratedPublicKey: { value: srv.clientPublicKey },
          sshHostPrivateKey: { value: srv.hostPrivateKey, secret: true },
          sshHostPublicKey: { value: srv.hostPublicKey },
        });
        return stack;
      },
    };
    return {
      automation,
      auditor: {
        leftovers: async () => {
          audits++;
          return b.leftovers ?? [];
        },
      },
      connect: (t) => connectSsh({ ...t, port: srv.port, readyTimeoutMs: 5000 }),
      preflight: () => ({ problems: [], warnings: [], costLines: ["cost: test"] }),
      sleep: async () => {},
      readyTimeoutMs: 10_000,
      destroyAttempts: 3,
      destroyBackoffMs: 1,
    };
  }

  function options(
    stacks: string[],
    extra: string[],
    target: ExperimentOptions["target"],
    signal = new AbortController().signal,
  ): ExperimentOptions {
    return {
      stacks,
      overrides: [...SMALL, ...extra],
      quick: false,
      interleave: true,
      runsDir: join(root, "runs"),
      log: createLogger("t", (l) => logLines.push(l)),
      signal,
      planArm: (s, o) => {
        const { plan, loaded } = planStack(s, o);
        return { plan, config: loaded.config };
      },
      target,
      onProgress: (l) => logLines.push(l),
    };
  }
  const vm =
    (b: FakeBehaviour = {}): ExperimentOptions["target"] =>
    (_plan, configs) =>
      gcpVmTarget(configs as Record<string, StackConfig>, deps(b));

  it("both arms on one VM in ABBA order: same evidence as a local run of the same stacks", async () => {
    const cloud = await runExperiment(
      options(["gcp-baseline", "gcp-managed"], ["rehearsal=true", "run.repeats=2"], vm()),
    );
    const local = await runExperiment(
      options(["gcp-baseline", "gcp-managed"], ["target=local", "run.repeats=2"], () =>
        localTarget(),
      ),
    );
    assert.deepEqual(stack.calls, ["up:us-central1-a", "destroy", "remove"]);
    assert.equal(audits, 1);
    assert.deepEqual(cloud.leftovers, []);
    // One VM, arms swapped in ABBA blocks: baseline, managed | managed, baseline.
    const plan = JSON.parse(readFileSync(join(cloud.dir, "plan.json"), "utf8"));
    assert.equal(plan.order, "abba");
    assert.deepEqual(plan.steps.map((s: { arm: string }) => s.arm[0]).join(""), "bbmmmmbb");
    assert.equal(plan.swaps.count, 2);
    assert.ok(
      srv.commands.includes(
        "docker compose -p inferbench-baseline --profile runner down --remove-orphans",
      ),
    );
    // The same folder layout under each arm's points/ and the same run-level files.
    for (const arm of ["baseline", "managed"]) {
      const c = tree(join(cloud.dir, arm, "points"));
      assert.ok(c.length > 0, `${arm}: points came home`);
      assert.deepEqual(c, tree(join(local.dir, arm, "points")), `${arm}: same files`);
    }
    const top = (d: string) =>
      readdirSync(d)
        .filter((f) => statSync(join(d, f)).isFile())
        .sort();
    assert.deepEqual(top(cloud.dir), top(local.dir));
    // Server metrics are keyed by series names (which engine saw which request): compare their
    // structure down to the scrape level, not the data-dependent keys below it.
    for (const [f, depth] of [
      ["baseline/points/concurrency2/point.json", Number.POSITIVE_INFINITY],
      ["managed/points/concurrency4-r1/server-metrics.json", 2],
      ["comparison.json", Number.POSITIVE_INFINITY],
    ] as const) {
      // Cost is the one thing only a priced host has (a local run has no price).
      const read = (d: string) =>
        JSON.parse(readFileSync(join(d, f), "utf8"), (k, v) =>
          /^(cost|usd)/i.test(k) ? undefined : v,
        );
      assert.deepEqual(
        shape(read(cloud.dir), depth),
        shape(read(local.dir), depth),
        `${f}: same schema`,
      );
    }
    // The experiment plans agree but for what the arms' hosts are (a cloud plan has a cost).
    const planShape = (d: string) => {
      const { arms: _arms, ...rest } = JSON.parse(readFileSync(join(d, "plan.json"), "utf8"));
      return shape(rest);
    };
    assert.deepEqual(planShape(cloud.dir), planShape(local.dir));
    assert.ok(cloud.reportHtml && existsSync(cloud.reportHtml));
    // The cloud run is priced from its billing window (the price table's estimate).
    assert.equal(typeof cloud.comparison?.cost?.totalUsd, "number");
    assert.equal(local.comparison?.cost, undefined);
    assert.equal(cloud.comparison?.rows.length, local.comparison?.rows.length);
    const m = new RunStore(cloud.runId, join(root, "runs")).readManifest();
    assert.equal(m.status, "complete");
    assert.equal(m.emulated, true, "a rehearsal is labelled emulated");
    assert.equal(m.infra?.state, "destroyed");
    assert.equal(m.infra?.zone, "us-central1-a");
    assert.ok(m.infra?.billing?.start && m.infra.billing.end, "billing window recorded");
    assert.equal(stack.config.get("deploy")?.value, "false");
  });

  it("a failed runner still collects, destroys and audits; resume measures only what is missing", async () => {
    let calls = 0;
    fake.onRunner = async () => {
      calls++;
      if (calls === 2) fake.runnerExit = 1;
    };
    let runId = "";
    await assert.rejects(
      runExperiment(options(["gcp-managed"], ["rehearsal=true"], vm())).catch((e) => {
        runId = /runs\/([\w-]+)/.exec(logLines.join("\n"))?.[1] ?? "";
        throw e;
      }),
      /runner failed on the host/,
    );
    assert.deepEqual(stack.calls, ["up:us-central1-a", "cancel", "refresh", "destroy", "remove"]);
    assert.equal(audits, 1);
    const store = RunStore.open(runId, join(root, "runs"));
    assert.equal(store.readManifest().status, "failed");
    const firstArm = store.readManifest().arms[0]!;
    assert.ok(store.isPointComplete(firstArm, "concurrency2", 0), "the first block came home");
    // Resume: a fresh VM (the old one is gone), only the missing block is measured.
    fake.runnerExit = 0;
    let blocks = 0;
    fake.onRunner = async () => {
      blocks++;
    };
    const r = await runExperiment({
      ...options(["gcp-managed"], ["rehearsal=true"], vm()),
      resume: runId,
    });
    assert.equal(blocks, 1);
    assert.equal(r.comparison?.rows.length, 2, "both points compared after the resume");
    assert.equal(store.readManifest().status, "complete");
  });

  it("Ctrl-C during the runner: collect, cancel, refresh, destroy; exit 130", async () => {
    const ac = new AbortController();
    fake.onRunner = async () => {
      ac.abort(new Error("SIGINT"));
    };
    await assert.rejects(
      runExperiment(options(["gcp-managed"], ["rehearsal=true"], vm(), ac.signal)),
      (e: unknown) => e instanceof UserError && e.exitCode === 130,
    );
    assert.deepEqual(stack.calls, ["up:us-central1-a", "cancel", "refresh", "destroy", "remove"]);
    assert.equal(fake.deployments.size, 0, "every compose project is down");
  });

  it("Ctrl-C during up: the rejected up is awaited, then cancel, refresh, destroy", async () => {
    const ac = new AbortController();
    const p = runExperiment(
      options(["gcp-managed"], ["rehearsal=true"], vm({ upWaitsForAbort: true }), ac.signal),
    );
    while (!stack?.calls.includes("up:us-central1-a") || stack.calls.length > 1)
      await new Promise((r) => setTimeout(r, 5));
    ac.abort(new Error("SIGINT"));
    await assert.rejects(p, (e: unknown) => e instanceof UserError && e.exitCode === 130);
    assert.deepEqual(stack.calls, ["up:us-central1-a", "cancel", "refresh", "destroy", "remove"]);
  });

  it("a zone without capacity moves on; destroy is retried; leftovers get cleanup commands", async () => {
    const left: LeftoverResource[] = [
      { kind: "instance", name: "inferbench-x-vm", location: "us-central1-b" },
    ];
    const r = await runExperiment(
      options(
        ["gcp-managed"],
        ["rehearsal=true", "workload.loadPoints=[{concurrency: 2}]"],
        vm({
          upErrors: ["googleapi: Error 503: ZONE_RESOURCE_POOL_EXHAUSTED"],
          destroyFailures: 99,
          leftovers: left,
        }),
      ),
    );
    assert.deepEqual(stack.calls.slice(0, 2), ["up:us-central1-a", "up:us-central1-b"]);
    assert.equal(stack.calls.filter((c) => c === "destroy").length, 3);
    assert.equal(r.destroyed, false);
    assert.deepEqual(r.cleanup, [
      "gcloud compute instances delete inferbench-x-vm --zone us-central1-b --project test-proj --quiet",
    ]);
    const m = RunStore.open(r.runId, join(root, "runs")).readManifest();
    assert.equal(m.infra?.state, "destroy-failed");
    assert.equal(m.infra?.zone, "us-central1-b");
  });

  it("--keep skips destroy and records the host as kept", async () => {
    const r = await runExperiment({
      ...options(
        ["gcp-managed"],
        ["rehearsal=true", "workload.loadPoints=[{concurrency: 2}]"],
        vm(),
      ),
      keep: true,
    });
    assert.equal(r.destroyed, false);
    assert.ok(!stack.calls.includes("destroy"));
    assert.equal(RunStore.open(r.runId, join(root, "runs")).readManifest().infra?.state, "kept");
  });

  it("refuses to start when preflight finds problems, before touching the cloud", async () => {
    let touched = false;
    const target: ExperimentOptions["target"] = (_p, configs) =>
      gcpVmTarget(configs as Record<string, StackConfig>, {
        ...deps(),
        preflight: () => ({
          problems: [{ check: "pulumi", message: "no pulumi" }],
          warnings: [],
          costLines: [],
        }),
        automation: {
          stack: async () => {
            touched = true;
            throw new Error("no");
          },
        },
      });
    await assert.rejects(
      runExperiment(options(["gcp-managed"], ["rehearsal=true"], target)),
      /preflight failed:[\s\S]*no pulumi/,
    );
    assert.equal(touched, false);
  });
});

describe("gcp-vm decisions", () => {
  it("classifies up errors and names the quota", () => {
    assert.equal(classifyUpError("ZONE_RESOURCE_POOL_EXHAUSTED", "STANDARD").kind, "capacity");
    const q = classifyUpError("Quota 'NVIDIA_H100_GPUS' exceeded. Limit: 0.0", "SPOT");
    assert.equal(q.kind, "quota");
    assert.match(q.hint!, /PREEMPTIBLE_NVIDIA_H100_GPUS/);
    assert.equal(classifyUpError("permission denied", "STANDARD").kind, "other");
  });

  it("a machine type the zone does not offer moves to the next zone too", () => {
    for (const m of [
      "Invalid value for field 'resource.machineType': 'zones/us-central1-f/machineTypes/a3-highgpu-8g'. Machine type with name 'a3-highgpu-8g' does not exist in zone 'us-central1-f'.",
      "The resource 'projects/p/zones/us-west1-c/acceleratorTypes/nvidia-h100-80gb' is not offered in zone us-west1-c",
    ]) {
      const c = classifyUpError(m, "STANDARD");
      assert.equal(c.kind, "unavailable", m);
      assert.match(c.hint!, /gcp\.zones/);
    }
  });

  it("quota hints name both pools for STANDARD (a time-limited GPU VM may use either), the preemptible one for SPOT", () => {
    const std = classifyUpError("Quota 'PREEMPTIBLE_NVIDIA_H100_GPUS' exceeded", "STANDARD");
    assert.match(std.hint!, /quota PREEMPTIBLE_NVIDIA_H100_GPUS is exhausted/);
    assert.match(std.hint!, /NVIDIA_H100_GPUS \(on-demand\) — or PREEMPTIBLE_NVIDIA_H100_GPUS/);
    const spot = classifyUpError("QUOTA_EXCEEDED", "FLEX_START");
    assert.doesNotMatch(spot.hint!, /on-demand/);
    assert.match(spot.hint!, /PREEMPTIBLE_NVIDIA_H100_GPUS/);
    assert.deepEqual(gpuQuotaNames("g2-standard-8"), {
      standard: "NVIDIA_L4_GPUS",
      preemptible: "PREEMPTIBLE_NVIDIA_L4_GPUS",
    });
    assert.match(
      classifyUpError("QUOTA_EXCEEDED", "STANDARD", "a2-ultragpu-8g").hint!,
      /NVIDIA_A100_80GB_GPUS/,
    );
  });

  it("the run's deadline is kept while ahead and renewed once past", () => {
    const now = new Date("2026-12-01T12:00:00Z");
    assert.equal(runDeadline(undefined, now, 4), "2026-12-01T16:00:00Z");
    assert.equal(runDeadline("2026-12-01T15:00:00Z", now, 4), "2026-12-01T15:00:00Z");
    assert.equal(runDeadline("2026-12-01T11:00:00Z", now, 4), "2026-12-01T16:00:00Z");
  });
});

/** A host that is ready at once and runs nothing: for provisioning decisions only. */
const readyHost = (): RemoteHost => ({
  exec: async () => ({ code: 0, signal: undefined, stdout: "ready\n", stderr: "" }) as never,
  upload: async () => {},
  download: async () => [],
  close: () => {},
});

describe("gcp-vm provisioning (fake cloud, fake host)", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "ib-gcpvm-prov-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** A context like the executor's, on a stack without gcp.project (the environment gives it). */
  function setup(extra: string[] = [], b: FakeBehaviour = {}) {
    const sets = [
      ...SMALL.filter((x) => !x.startsWith("gcp.project")),
      "gcp.sshSourceRanges=[34.118.7.7/32]",
      ...extra,
    ];
    const { plan, loaded } = planStack("gcp-managed", sets, { env: {} });
    const ep = experimentPlan({
      stacks: ["gcp-managed"],
      overrides: sets,
      quick: false,
      plans: [plan],
      interleave: true,
    });
    const runId = `20261201-120000-${Math.random().toString(16).slice(2, 6)}`;
    const store = new RunStore(runId, join(root, "runs"));
    store.writeJson(store.manifestPath(), { runId, status: "running", arms: ["managed"] });
    const logs: string[] = [];
    const ctx: TargetContext = {
      plan: ep,
      store,
      log: createLogger("t", (l) => logs.push(l)),
      signal: new AbortController().signal,
      hardSignal: new AbortController().signal,
      saveInfra: (f) => {
        store.updateInfra(f);
      },
    };
    let stack!: FakeStack;
    const audits: { project?: string; namePrefix: string }[] = [];
    const removed: LeftoverResource[][] = [];
    const tokenStates: TokenState[] = [];
    let leftovers = b.leftovers ?? [];
    const deps: Partial<GcpVmDeps> = {
      automation: {
        async stack(_w, name) {
          stack = new FakeStack(name, b);
          return stack;
        },
        async readProjectConfig(s, key) {
          assert.equal(s, "gcp-managed");
          assert.equal(key, "hfToken");
          return "hf_from_the_users_stack_secret";
        },
      },
      auditor: {
        leftovers: async (_id, w) => {
          audits.push(w);
          return leftovers;
        },
        remove: async (left, project) => {
          removed.push([...left]);
          leftovers = [];
          return left.map((l) => ({
            command: `gcloud delete ${l.name} --project ${project}`,
            ok: true,
          }));
        },
      },
      connect: async () => readyHost(),
      preflight: (_arms, extra) => {
        tokenStates.push(extra.hfToken);
        return { problems: [], warnings: [], costLines: [], project: "env-proj" };
      },
      now: () => new Date("2026-12-01T12:00:00Z"),
      sleep: async () => {},
      readyTimeoutMs: 1000,
      destroyAttempts: 2,
      destroyBackoffMs: 1,
    };
    const target = gcpVmTarget({ managed: loaded.config }, deps);
    return { target, ctx, store, logs, audits, removed, tokenStates, stack: () => stack };
  }

  it("stores the resolved project and network; audit and cleanup read them from the manifest", async () => {
    const t = setup();
    await t.target.provision(t.ctx);
    const infra = t.store.readManifest().infra!;
    assert.equal(
      infra.project,
      "env-proj",
      "the project the environment resolved, in the manifest",
    );
    assert.equal(infra.network, "inferbench");
    const cfg = t.stack().config;
    assert.equal(cfg.get("gcp:project")?.value, "env-proj", "the provider gets the same project");
    assert.equal(cfg.get("deadline")?.value, "2026-12-01T16:00:00Z");
    // The billing window starts at GCE's creation time of the VM.
    assert.equal(infra.billing?.start, "2026-12-01T11:58:00.123Z");
    assert.ok(t.stack().upOpts[0]?.hardSignal, "a second Ctrl-C reaches pulumi as a second SIGINT");
    // What the manifest says wins over today's config (e.g. `destroy` long after the run).
    t.store.updateInfra({ project: "moved-proj", network: "othernet" });
    assert.equal(await t.target.destroy(t.ctx), true);
    await t.target.audit(t.ctx);
    assert.deepEqual(t.audits.at(-1), {
      project: "moved-proj",
      namePrefix: `othernet-${t.store.runId}`.slice(0, 50),
    });
    const cmds = t.target.cleanupCommands!([{ kind: "network", name: "n" }], t.ctx);
    assert.deepEqual(cmds, ["gcloud compute networks delete n --project moved-proj --quiet"]);
  });

  it("a failed destroy runs the label-matched cleanup, then audits again", async () => {
    const left: LeftoverResource[] = [
      { kind: "instance", name: "inferbench-r-vm", location: "us-central1-a" },
      { kind: "network", name: "inferbench-r-net" },
    ];
    const t = setup([], { destroyFailures: 99, leftovers: left });
    await t.target.provision(t.ctx);
    assert.equal(await t.target.destroy(t.ctx), false);
    assert.deepEqual(t.removed, [left], "the leftovers were deleted, not only printed");
    assert.equal(t.store.readManifest().infra?.state, "destroy-failed");
    assert.deepEqual(await t.target.audit(t.ctx), []);
    assert.ok(t.logs.some((l) => /gcloud deleted every resource labelled with the run/.test(l)));
  });

  it("`pulumi config set --secret hfToken` on the user's stack reaches the run as a secret", async () => {
    const t = setup(["hfToken={secure: v1:AAAAciphertext}"]);
    await t.target.provision(t.ctx);
    assert.deepEqual(t.tokenStates, [{ kind: "set" }]);
    assert.deepEqual(t.stack().config.get("hfToken"), {
      value: "hf_from_the_users_stack_secret",
      secret: true,
    });
    await t.target.destroy(t.ctx);
  });

  it("a zone that does not offer the machine type moves on to the next", async () => {
    const t = setup([], {
      upErrors: ["Machine type with name 'a3-highgpu-8g' does not exist in zone 'us-central1-a'."],
    });
    await t.target.provision(t.ctx);
    assert.deepEqual(t.stack().calls, ["up:us-central1-a", "up:us-central1-b"]);
    assert.equal(t.store.readManifest().infra?.zone, "us-central1-b");
    await t.target.destroy(t.ctx);
  });
});

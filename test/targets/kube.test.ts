/**
 * The kube target's orchestration against a fake cluster (the real one is rehearse:kube's): its
 * refusals before anything is created (unreachable, RBAC, node selector, GPUs), the bounded wait
 * that reports the scheduler's reason, a runner Job whose results come home through a real tar
 * stream, and a destroy/audit by the run label.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { after, describe, it } from "node:test";
import type { AutomationApi, StackOps } from "../../infra/automation.ts";
import type { KubeCluster, Labelled, NodeFacts, PodFacts } from "../../kube/cluster.ts";
import type { KubeObject } from "../../kube/render.ts";
import { EVENTS_FILE } from "../../results/store.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import { kubeTarget, resolveKubeconfig } from "../../targets/kube/index.ts";
import { targetRun } from "../../testkit/target-run.ts";

const root = mkdtempSync(join(tmpdir(), "ib-kube-target-"));
after(() => rmSync(root, { recursive: true, force: true }));

const KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n";

function setup(overrides: string[] = []) {
  const sets = [
    "rehearsal=true",
    `kubeconfig.content=${KUBECONFIG.replace(/\n/g, "\\n")}`,
    ...overrides,
  ];
  return targetRun("vke-managed", sets, root);
}

/** A cluster in memory: every call recorded; behaviour set per test. */
class FakeCluster implements KubeCluster {
  calls: string[] = [];
  reachable = true;
  denied = new Set<string>();
  nodeList: NodeFacts[] = [{ name: "n1", ready: true, gpus: 8, kubeletVersion: "v1.34.4" }];
  healthy = true;
  podList: PodFacts[] = [];
  eventList: string[] = [];
  jobs = new Map<string, KubeObject>();
  labelledNow: Labelled[] = [];
  /** The runner's results folder in the "pod" (served by a real tar). */
  resultsDir = "";
  exitAfterPolls = 2;
  polls = 0;
  /** Follower shard pods of an indexed runner Job (they are listed before shard 0's). */
  followers: PodFacts["phase"][] = [];
  /** Why the follower pods are not running (container waiting reasons). */
  followerReasons: string[] = [];
  /** Pods the target exec'd into. */
  execPods = new Set<string>();
  async version() {
    if (!this.reachable) throw new Error("connect ECONNREFUSED 127.0.0.1:6443");
    return "v1.34.4";
  }
  async canI(verb: string, resource: string) {
    return !this.denied.has(`${verb} ${resource}`);
  }
  async nodes() {
    return this.nodeList;
  }
  async serviceGet(_ns: string, svc: string, path: string) {
    this.calls.push(`get ${svc}${path}`);
    if (!this.healthy) throw new Error("503");
    return "";
  }
  async createJob(job: KubeObject) {
    this.jobs.set(job.metadata.name, job);
    this.calls.push(`create job ${job.metadata.name}`);
  }
  async job(_ns: string, name: string) {
    const failed = this.followers.filter((p) => p === "Failed").length;
    return this.jobs.has(name) ? { active: 1, succeeded: 0, failed } : undefined;
  }
  async deleteJob(_ns: string, name: string) {
    this.jobs.delete(name);
    this.calls.push(`delete job ${name}`);
  }
  async pods(_ns: string, selector: string) {
    // A deleted Job's pods are gone (the target waits for that before creating it again).
    if (selector.startsWith("job-name=") && !this.jobs.has(selector.slice(9))) return [];
    if (selector.startsWith("job-name="))
      return [
        ...this.followers.map((phase, i) => ({
          name: `${selector.slice(9)}-${i + 1}-f${i}`,
          phase,
          ready: phase === "Running",
          reasons: this.followerReasons,
          images: [],
        })),
        {
          name: `${selector.slice(9)}-${this.followers.length ? "0-" : ""}abc`,
          phase: "Running",
          ready: true,
          reasons: [],
          images: [],
        },
      ];
    return this.podList;
  }
  async events() {
    return this.eventList;
  }
  async logs() {
    return "log line";
  }
  async followLogs(_ns: string, _p: string, _c: string, onLine: (l: string) => void) {
    onLine("runner: measuring");
  }
  async exec(_ns: string, pod: string, _c: string, argv: string[], stdout?: Writable) {
    const cmd = argv.join(" ");
    this.execPods.add(pod);
    this.calls.push(`exec ${cmd}`);
    if (cmd.startsWith("cat ")) {
      if (++this.polls < this.exitAfterPolls) return { code: 1, stderr: "No such file" };
      stdout?.write("0\n");
      return { code: 0, stderr: "" };
    }
    if (cmd.includes("tar -cf - points")) {
      // The real tar of the pod's points folder, streamed like exec streams it.
      await new Promise<void>((res, rej) => {
        const t = spawn("tar", ["-cf", "-", "points"], { cwd: this.resultsDir });
        t.stdout.on("data", (b) => stdout?.write(b));
        t.on("close", (code) => (code === 0 ? res() : rej(new Error(`tar ${code}`))));
      });
      return { code: 0, stderr: "" };
    }
    return { code: 0, stderr: "" };
  }
  async labelled() {
    return this.labelledNow;
  }
  async deleteNamespaces() {
    const ns = this.labelledNow.filter((l) => l.kind === "Namespace").map((l) => l.name);
    this.labelledNow = [];
    return ns;
  }
}

class FakeStack implements Partial<StackOps> {
  ops: string[] = [];
  constructor(readonly name: string) {}
  async up() {
    this.ops.push("up");
    return {};
  }
  async destroy() {
    this.ops.push("destroy");
  }
  async remove() {
    this.ops.push("remove");
  }
}

function deps(c: FakeCluster, stacks: FakeStack[]) {
  return {
    cluster: () => c,
    automation: (): AutomationApi => ({
      async stack(_w: string, name: string) {
        const s = new FakeStack(name);
        stacks.push(s);
        return s as unknown as StackOps;
      },
    }),
    projectConfig: {},
    pollMs: 1,
    unschedulableMs: 20,
  };
}

describe("kube target", () => {
  it("refuses an unreachable cluster, naming where the kubeconfig came from", async () => {
    const { configs, ctx } = setup();
    const c = new FakeCluster();
    c.reachable = false;
    await assert.rejects(
      kubeTarget(configs, deps(c, [])).provision(ctx),
      /cannot reach the cluster of kubeconfig\.content: connect ECONNREFUSED/,
    );
  });

  it("refuses missing RBAC rights before creating anything, listing each", async () => {
    const { configs, ctx } = setup();
    const c = new FakeCluster();
    c.denied = new Set(["create namespaces", "create pods/exec"]);
    const stacks: FakeStack[] = [];
    await assert.rejects(
      kubeTarget(configs, deps(c, stacks)).provision(ctx),
      /may not: create namespaces, create pods\/exec \(RBAC\)/,
    );
    assert.equal(stacks.length, 0);
  });

  it("refuses a node selector that matches no Ready node", async () => {
    const { configs, ctx } = setup();
    const c = new FakeCluster();
    c.nodeList = [];
    await assert.rejects(
      kubeTarget(configs, deps(c, [])).provision(ctx),
      /kubeconfig\.nodeSelector .* no Ready node matches/,
    );
  });

  it("refuses GPUs no node can give, and both arms side by side beyond the cluster's GPUs", async () => {
    const pinned = `engine.images.managed=ghcr.io/x/kvcached@sha256:${"e".repeat(64)}`;
    {
      const { configs, ctx } = setup([
        "rehearsal=false",
        pinned,
        "hfToken=hf_abcdefghijklmnopqrstuvwxyz0123",
      ]);
      const c = new FakeCluster();
      c.nodeList = [{ name: "n1", ready: true, gpus: 8, kubeletVersion: "v1.34.4" }];
      // 6 + 6 GPUs side by side on one 8-GPU node.
      await assert.rejects(
        kubeTarget(configs, deps(c, [])).provision(ctx),
        (err: Error & { hint?: string }) => {
          assert.match(
            err.message,
            /both arms side by side need 12 nvidia\.com\/gpu; the Ready nodes .* offer 8/,
          );
          assert.match(err.hint ?? "", /--no-interleave/);
          return true;
        },
      );
    }
    {
      const { configs, ctx } = setup([
        "rehearsal=false",
        pinned,
        "hfToken=hf_abcdefghijklmnopqrstuvwxyz0123",
      ]);
      const c = new FakeCluster();
      c.nodeList = [{ name: "n1", ready: true, gpus: 0, kubeletVersion: "v1.34.4" }];
      await assert.rejects(kubeTarget(configs, deps(c, [])).provision(ctx), /offer 0/);
    }
  });

  it("an unschedulable engine fails the deploy in bounded time with the scheduler's reason and events", async () => {
    const { configs, ctx, store } = setup();
    const c = new FakeCluster();
    c.healthy = false;
    c.podList = [
      {
        name: "llama-0-x",
        phase: "Pending",
        ready: false,
        reasons: [
          "PodScheduled: Unschedulable (0/1 nodes are available: 1 Insufficient nvidia.com/gpu.)",
        ],
        images: [],
      },
    ];
    c.eventList = [
      "2026-12-02T01:00:00Z Warning Pod/llama-0-x: FailedScheduling: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
    ];
    const t = kubeTarget(configs, deps(c, []));
    await t.provision(ctx);
    await assert.rejects(t.deployArm("baseline", ctx), (err: Error) => {
      assert.match(err.message, /not healthy and cannot become so/);
      assert.match(err.message, /Insufficient nvidia\.com\/gpu/);
      assert.match(err.message, /FailedScheduling/);
      return true;
    });
    assert.match(
      readFileSync(join(store.armDir("baseline"), EVENTS_FILE), "utf8"),
      /FailedScheduling/,
    );
  });

  it("deploys through Pulumi, waits on /health, runs a Job, brings completed points home, tears down", async () => {
    const { configs, ctx, plan, store } = setup();
    const c = new FakeCluster();
    const pod = mkdtempSync(join(tmpdir(), "ib-kube-pod-"));
    for (const [label, complete] of [
      ["concurrency1", true],
      ["concurrency4", false],
    ] as const) {
      mkdirSync(join(pod, "points", label), { recursive: true });
      writeFileSync(join(pod, "points", label, "profile_export.json"), "{}");
      if (complete) writeFileSync(join(pod, "points", label, "point.json"), '{"valid":true}');
    }
    c.resultsDir = pod;
    const stacks: FakeStack[] = [];
    const t = kubeTarget(configs, deps(c, stacks));
    await t.provision(ctx);
    assert.equal(t.sideBySide, true);
    await t.deployArm("baseline", ctx);
    assert.deepEqual(stacks[0]!.ops, ["up"]);
    assert.ok(stacks[0]!.name.endsWith("-baseline"));
    // Every engine's and the router's /health was asked for.
    for (const e of plan.arms.baseline!.engines)
      assert.ok(c.calls.includes(`get ${e.name}:http/health`), e.name);
    assert.ok(c.calls.includes("get router:http/health"));
    const steps = plan.steps.filter((s) => s.arm === "baseline").slice(0, 1);
    await t.runArm("baseline", steps, ctx);
    await t.collect("baseline", ctx);
    // Only the complete point came home; the pod was told so; the Job is gone.
    assert.ok(store.isPointComplete("baseline", "concurrency1", 0));
    assert.throws(() =>
      readFileSync(join(store.armDir("baseline"), "points", "concurrency4", "profile_export.json")),
    );
    assert.ok(c.calls.some((x) => x.startsWith("exec touch /results/.collected")));
    assert.equal(c.jobs.size, 0);
    await t.undeployArm("baseline", ctx);
    assert.deepEqual(stacks.at(-1)!.ops, ["destroy", "remove"]);
    c.labelledNow = [{ kind: "Namespace", name: "stray" }];
    assert.equal(await t.destroy(ctx), true);
    assert.deepEqual(await t.audit(ctx), []);
    rmSync(pod, { recursive: true, force: true });
  });

  it("runner.parallelism: an indexed Job of shards; shard 0 is followed and collected, a failed follower is its to report", async () => {
    const { configs, ctx, plan, store } = setup([
      "runner.parallelism=2",
      "workload.loadPoints=[{concurrency: 2}, {concurrency: 4}]",
    ]);
    const c = new FakeCluster();
    const pod = mkdtempSync(join(tmpdir(), "ib-kube-pod-"));
    mkdirSync(join(pod, "points", "concurrency2"), { recursive: true });
    writeFileSync(join(pod, "points", "concurrency2", "point.json"), '{"valid":true}');
    c.resultsDir = pod;
    // Shard 1 failed: the Job counts a failed pod, but shard 0 goes on and writes its exit code.
    c.followers = ["Failed"];
    c.exitAfterPolls = 3;
    const t = kubeTarget(configs, deps(c, []));
    await t.provision(ctx);
    await t.deployArm("baseline", ctx);
    const steps = plan.steps.filter((s) => s.arm === "baseline").slice(0, 1);
    await t.runArm("baseline", steps, ctx);
    const job = [...c.jobs.values()][0]! as KubeObject & { spec: Record<string, unknown> };
    assert.equal(job.spec.completionMode, "Indexed");
    assert.equal(job.spec.completions, 2);
    assert.equal(job.spec.backoffLimitPerIndex, 0);
    await t.collect("baseline", ctx);
    assert.ok(store.isPointComplete("baseline", "concurrency2", 0));
    assert.deepEqual([...c.execPods], [`${job.metadata.name}-0-abc`], "only shard 0 holds results");
    // Every shard's log is kept before the Job goes.
    const kept = readFileSync(
      join(store.armDir("baseline"), "host", `runner-${job.metadata.name}.log`),
      "utf8",
    );
    assert.match(kept, new RegExp(`===== ${job.metadata.name}-1-f0 \\(Failed\\)`));
    assert.match(kept, new RegExp(`===== ${job.metadata.name}-0-abc \\(Running\\)`));
    await t.undeployArm("baseline", ctx);
    assert.equal(await t.destroy(ctx), true);
    rmSync(pod, { recursive: true, force: true });
  });

  it("runner.parallelism: a shard pod that cannot start fails the run at once, naming it", async () => {
    const { configs, ctx, plan } = setup([
      "runner.parallelism=2",
      "workload.loadPoints=[{concurrency: 2}, {concurrency: 4}]",
    ]);
    const c = new FakeCluster();
    c.followers = ["Pending"];
    c.followerReasons = ["runner: ErrImageNeverPull (Container image is not present)"];
    c.exitAfterPolls = 1000;
    const t = kubeTarget(configs, deps(c, []));
    await t.provision(ctx);
    await t.deployArm("baseline", ctx);
    const steps = plan.steps.filter((s) => s.arm === "baseline").slice(0, 1);
    await assert.rejects(
      t.runArm("baseline", steps, ctx),
      /runner shard pod .*-1-f0 cannot start: runner: ErrImageNeverPull/,
    );
  });

  it("a cluster source that failed half-way is still closed and audited", async () => {
    const { configs, ctx } = setup();
    const calls: string[] = [];
    const t = kubeTarget(configs, deps(new FakeCluster(), []), () => ({
      async open() {
        calls.push("open");
        throw new Error("Insufficient regional quota");
      },
      async close() {
        calls.push("close");
        return true;
      },
      async audit() {
        calls.push("audit");
        return [{ kind: "cluster", name: "ib-x", location: "us-central1-a" }];
      },
      clusterRemains: () => true,
    }));
    await assert.rejects(t.provision(ctx), /Insufficient regional quota/);
    assert.equal(await t.destroy(ctx), true);
    assert.deepEqual(await t.audit(ctx), [
      { kind: "cluster", name: "ib-x", location: "us-central1-a" },
    ]);
    assert.deepEqual(calls, ["open", "close", "audit"]);
  });

  it("the audit reports what still carries the run label, with a cleanup command", async () => {
    const { configs, ctx } = setup();
    const c = new FakeCluster();
    const t = kubeTarget(configs, deps(c, []));
    await t.provision(ctx);
    c.labelledNow = [{ kind: "Deployment", name: "router", namespace: "ns1" }];
    const left = await t.audit(ctx);
    assert.deepEqual(left, [{ kind: "Deployment", name: "ns1/router" }]);
    assert.match(
      t.cleanupCommands!(left, ctx)[0]!,
      /^kubectl delete namespace -l app\.kubernetes\.io\/managed-by=inferbench,inferbench\.dev\/run=/,
    );
  });
});

describe("resolveKubeconfig", () => {
  const base = {
    namespacePrefix: "x",
    nodeSelector: {},
    tolerations: [],
    gpusPerNode: 8,
    gpuResource: "nvidia.com/gpu",
  } as unknown as StackConfig["kubeconfig"];
  it("reads a path, and says which source could not be read", async () => {
    const file = join(root, "kc.yaml");
    writeFileSync(file, KUBECONFIG);
    const r = await resolveKubeconfig({ ...base, path: file }, "s", {
      projectConfig: {},
      readFile: (p) => readFileSync(p, "utf8"),
      env: {},
    });
    assert.equal(r.content, KUBECONFIG);
    await assert.rejects(
      resolveKubeconfig({ ...base, path: join(root, "missing") }, "s", {
        projectConfig: {},
        readFile: (p) => readFileSync(p, "utf8"),
        env: {},
      }),
      /kubeconfig\.path .*missing: cannot read it \(ENOENT\)/,
    );
  });
  it("decrypts a Pulumi secret of the user's stack", async () => {
    const r = await resolveKubeconfig({ ...base, content: { secure: "v1:abc" } }, "vke-managed", {
      projectConfig: {
        readProjectConfig: async (s, k) =>
          s === "vke-managed" && k === "kubeconfig"
            ? JSON.stringify({ content: KUBECONFIG })
            : undefined,
      },
      readFile: () => "",
      env: {},
    });
    assert.equal(r.content, KUBECONFIG);
  });
});

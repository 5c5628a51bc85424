/**
 * Orchestration of a cloud run against a fake Automation API and a real SSH server on loopback:
 * destroy runs after success, after a failed benchmark, after Ctrl-C during up and during the
 * benchmark; capacity errors move to the next zone; leftovers print cleanup commands.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import {
  armSchedule,
  classifyUpError,
  newRunId,
  type RunCloudDeps,
  readManifest,
  runCloud,
} from "../../cli/commands/run-cloud.ts";
import { planStack } from "../../cli/plan-stack.ts";
import type { LeftoverResource } from "../../infra/audit.ts";
import type { AutomationApi, ConfigEntry, StackOps } from "../../infra/automation.ts";
import { UserError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/logger.ts";
import { connectSsh } from "../../lib/ssh/ssh.ts";
import { startSshServer, type TestSshServer } from "../../testkit/ssh-server.ts";

const PINNED = `ghcr.io/ovg-project/kvcached-vllm@sha256:${"e".repeat(64)}`;

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
  async up(o: { signal?: AbortSignal } = {}) {
    this.calls.push(`up:${this.config.get("zone")?.value}`);
    if (this.b.upWaitsForAbort) {
      await new Promise((_r, rej) =>
        o.signal?.addEventListener("abort", () => rej(new Error("update canceled"))),
      );
    }
    const err = this.b.upErrors?.shift();
    if (err) throw new Error(err);
    return {
      externalIp: "127.0.0.1",
      sshUser: "inferbench",
      instance: "inferbench-vm",
      sshCommand: "ssh ...",
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

describe("runCloud orchestration", () => {
  let srv: TestSshServer;
  let root: string;
  let interrupt: (() => void) | undefined;
  let stack: FakeStack;
  let logLines: string[];
  let audits: number;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "ib-runcloud-"));
    srv = await startSshServer(join(root, "remote"));
  });
  after(async () => {
    await srv.close();
    await rm(root, { recursive: true, force: true });
  });
  beforeEach(() => {
    interrupt = undefined;
    logLines = [];
    audits = 0;
  });

  /** A runner that writes an artifact; `hook` can fail or interrupt it. */
  function remote(runnerExit: number | (() => Promise<number>) = 0) {
    srv.commands.length = 0;
    srv.setExec(async (cmd, io) => {
      if (cmd.includes("/var/lib/inferbench/ready")) {
        io.stdout("ready\n");
        return 0;
      }
      if (cmd.startsWith("docker compose ls")) {
        io.stdout(JSON.stringify([{ Name: "inferbench-baseline" }]));
        return 0;
      }
      const m = /cd \/opt\/inferbench\/(inferbench-\w+) && rm -rf results/.exec(cmd);
      if (m) {
        const dir = join(srv.root, "opt/inferbench", m[1]!, "results");
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, "profile_export_genai_perf.json"), `{"arm":"${m[1]}"}`);
        return typeof runnerExit === "number" ? runnerExit : runnerExit();
      }
      return 0;
    });
  }

  function deps(b: FakeBehaviour = {}): Partial<RunCloudDeps> {
    const automation: AutomationApi = {
      async stack(_workDir, name) {
        stack = new FakeStack(name, b);
        // Keys as preflight would have stored them: the loopback server's host key and client key.
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
      loadArm: (s, overrides) => {
        const { loaded, plan } = planStack(s, [
          ...overrides,
          `engine.images.managed=${PINNED}`,
          "gcp.project=test-proj",
          "gcp.zones=[us-central1-a,us-central1-b]",
        ]);
        return { stack: s, config: loaded.config, plan };
      },
      preflight: () => ({ problems: [], warnings: [], costLines: ["cost: test"] }),
      onInterrupt: (h) => {
        interrupt = h;
        return () => {
          interrupt = undefined;
        };
      },
      sleep: async () => {},
      log: createLogger("t", (l) => logLines.push(l)),
      readyTimeoutMs: 10_000,
      destroyAttempts: 3,
      destroyBackoffMs: 1,
    };
  }

  it("both arms on one VM: deploy, benchmark, pull each, then destroy and audit", async () => {
    remote();
    const r = await runCloud({
      stacks: ["gcp-baseline", "gcp-managed"],
      runId: "ib-test-ok",
      resultsRoot: join(root, "runs"),
      deps: deps(),
    });
    assert.equal(r.destroyed, true);
    assert.deepEqual(stack.calls, ["up:us-central1-a", "destroy", "remove"]);
    assert.equal(audits, 1);
    assert.deepEqual(
      r.arms.map((a) => [a.stack, a.ok]),
      [
        ["gcp-baseline", true],
        ["gcp-managed", true],
      ],
    );
    const got = await readFile(
      join(r.resultsDir, "gcp-managed/artifacts/profile_export_genai_perf.json"),
      "utf8",
    );
    assert.equal(got, '{"arm":"inferbench-managed"}');
    // Swapping arms stops the other compose project; the VM is not reprovisioned.
    assert.ok(srv.commands.includes("docker compose -p inferbench-baseline down --remove-orphans"));
    assert.equal(stack.config.get("deploy")?.value, "false");
    assert.equal(stack.config.get("runId")?.value, "ib-test-ok");
    assert.equal(readManifest(r.resultsDir)?.state, "destroyed");
    assert.equal(interrupt, undefined, "interrupt handler left installed");
  });

  it("destroy still runs when the benchmark fails", async () => {
    remote(1);
    await assert.rejects(
      runCloud({
        stacks: ["gcp-managed"],
        runId: "ib-test-fail",
        resultsRoot: join(root, "runs"),
        deps: deps(),
      }),
      (e: unknown) => e instanceof UserError && /benchmark failed/.test(e.message),
    );
    assert.deepEqual(stack.calls, ["up:us-central1-a", "destroy", "remove"]);
    assert.equal(audits, 1);
  });

  it("Ctrl-C during the benchmark: abort, cancel, refresh, destroy", async () => {
    remote(async () => {
      interrupt?.();
      await new Promise((r) => setTimeout(r, 200));
      return 143;
    });
    await assert.rejects(
      runCloud({
        stacks: ["gcp-managed"],
        runId: "ib-test-int",
        resultsRoot: join(root, "runs"),
        deps: deps(),
      }),
      (e: unknown) => e instanceof UserError && e.exitCode === 130,
    );
    assert.deepEqual(stack.calls, ["up:us-central1-a", "cancel", "refresh", "destroy", "remove"]);
  });

  it("Ctrl-C during up: the rejected up is awaited, then cancel, refresh, destroy", async () => {
    remote();
    const p = runCloud({
      stacks: ["gcp-managed"],
      runId: "ib-test-int-up",
      resultsRoot: join(root, "runs"),
      deps: deps({ upWaitsForAbort: true }),
    });
    while (!stack?.calls.includes("up:us-central1-a") || stack.name !== "ib-test-int-up") {
      await new Promise((r) => setTimeout(r, 5));
    }
    interrupt?.();
    await assert.rejects(p, (e: unknown) => e instanceof UserError && e.exitCode === 130);
    assert.deepEqual(stack.calls, ["up:us-central1-a", "cancel", "refresh", "destroy", "remove"]);
  });

  it("a zone without capacity moves on to the next zone", async () => {
    remote();
    const r = await runCloud({
      stacks: ["gcp-managed"],
      runId: "ib-test-zone",
      resultsRoot: join(root, "runs"),
      deps: deps({ upErrors: ["googleapi: Error 503: ZONE_RESOURCE_POOL_EXHAUSTED"] }),
    });
    assert.equal(r.destroyed, true);
    assert.deepEqual(stack.calls.slice(0, 2), ["up:us-central1-a", "up:us-central1-b"]);
  });

  it("destroy is retried; if it keeps failing, leftovers are listed with cleanup commands", async () => {
    remote();
    const ok = await runCloud({
      stacks: ["gcp-managed"],
      runId: "ib-test-retry",
      resultsRoot: join(root, "runs"),
      deps: deps({ destroyFailures: 2 }),
    });
    assert.equal(ok.destroyed, true);
    assert.equal(stack.calls.filter((c) => c === "destroy").length, 3);

    remote();
    const left: LeftoverResource[] = [
      { kind: "network", name: "inferbench-ib-test-leak-net" },
      { kind: "instance", name: "inferbench-ib-test-leak-vm", location: "us-central1-a" },
    ];
    const bad = await runCloud({
      stacks: ["gcp-managed"],
      runId: "ib-test-leak",
      resultsRoot: join(root, "runs"),
      deps: deps({ destroyFailures: 99, leftovers: left }),
    });
    assert.equal(bad.destroyed, false);
    assert.deepEqual(bad.cleanup, [
      "gcloud compute instances delete inferbench-ib-test-leak-vm --zone us-central1-a --project test-proj --quiet",
      "gcloud compute networks delete inferbench-ib-test-leak-net --project test-proj --quiet",
    ]);
    assert.ok(logLines.some((l) => l.includes("inferbench destroy --run ib-test-leak")));
    assert.equal(readManifest(bad.resultsDir)?.state, "destroy-failed");
  });

  it("--keep skips destroy and says how to destroy later", async () => {
    remote();
    const r = await runCloud({
      stacks: ["gcp-managed"],
      keep: true,
      runId: "ib-test-keep",
      resultsRoot: join(root, "runs"),
      deps: deps(),
    });
    assert.equal(r.destroyed, false);
    assert.ok(!stack.calls.includes("destroy"));
    assert.ok(logLines.some((l) => l.includes("inferbench destroy --run ib-test-keep")));
    assert.equal(readManifest(r.resultsDir)?.state, "kept");
  });

  it("a failure before up submits nothing: the empty stack is removed, no destroy", async () => {
    remote();
    const d = deps();
    await assert.rejects(
      runCloud({
        stacks: ["gcp-managed"],
        runId: "ib-test-early",
        resultsRoot: join(root, "runs"),
        deps: {
          ...d,
          automation: {
            stack: async (w, n) => {
              const s = await d.automation!.stack(w, n);
              s.setConfig = async () => {
                throw new Error("passphrase must be set");
              };
              return s;
            },
          },
        },
      }),
      /passphrase/,
    );
    assert.deepEqual(stack.calls, ["remove"]);
  });

  it("refuses to start when preflight finds problems, before touching the cloud", async () => {
    let touched = false;
    const d = deps();
    await assert.rejects(
      runCloud({
        stacks: ["gcp-managed"],
        runId: "ib-test-pre",
        resultsRoot: join(root, "runs"),
        deps: {
          ...d,
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
        },
      }),
      /preflight failed:[\s\S]*no pulumi/,
    );
    assert.equal(touched, false);
  });
});

describe("run-cloud decisions", () => {
  it("classifies up errors and names the quota", () => {
    assert.equal(classifyUpError("ZONE_RESOURCE_POOL_EXHAUSTED", "STANDARD").kind, "capacity");
    const q = classifyUpError("Quota 'NVIDIA_H100_GPUS' exceeded. Limit: 0.0", "SPOT");
    assert.equal(q.kind, "quota");
    assert.match(q.hint!, /PREEMPTIBLE_NVIDIA_H100_GPUS/);
    assert.equal(classifyUpError("permission denied", "STANDARD").kind, "other");
  });

  it("run ids are valid label values and sortable by time", () => {
    const id = newRunId(new Date("2026-11-24T13:45:00Z"), () => 0.5);
    assert.equal(id, "ib-20261124-134500-7fff");
    assert.match(id, /^[a-z0-9_-]{1,63}$/);
  });

  it("interleaved repeats alternate the arm order", () => {
    assert.deepEqual(
      armSchedule(["b", "m"], 2, true).map((s) => s.arm),
      ["b", "m", "m", "b"],
    );
    assert.deepEqual(
      armSchedule(["b", "m"], 2, false).map((s) => s.arm),
      ["b", "m", "b", "m"],
    );
  });
});

import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Command } from "commander";
import { destroyRuns, registerDestroy, selectRuns } from "../../cli/commands/destroy.ts";
import { formatAge, registerStatus, statusRows } from "../../cli/commands/status.ts";
import { parseGcloudList } from "../../infra/audit.ts";
import type { StackOps } from "../../infra/automation.ts";
import { createLogger } from "../../lib/logger.ts";
import { type RunManifest, RunStore } from "../../results/store.ts";
import { configEntries } from "../../targets/gcp-vm/index.ts";
import {
  type ArmInput,
  checkBackend,
  checkConfig,
  checkGcloudCredentials,
  checkPulumiCli,
  costLines,
  ensureRunKeys,
  writeLocalSshFiles,
} from "../../targets/gcp-vm/preflight/index.ts";
import { planStack } from "../../targets/plan-stack.ts";
import type { InfraRun } from "../../targets/runs.ts";

const PINNED = `ghcr.io/ovg-project/kvcached-vllm@sha256:${"e".repeat(64)}`;
const MY_IP = "gcp.sshSourceRanges=[34.118.7.7/32]";
function arm(stack: string, sets: string[] = []): ArmInput {
  const { loaded, plan } = planStack(stack, [`engine.images.managed=${PINNED}`, MY_IP, ...sets]);
  return { stack, config: loaded.config, plan };
}

describe("preflight checks", () => {
  it("accepts the shipped A/B pair and refuses mismatched ones", () => {
    assert.deepEqual(checkConfig([arm("gcp-baseline"), arm("gcp-managed")]).problems, []);
    const diff = checkConfig([arm("gcp-baseline"), arm("gcp-managed", ["gcp.maxRunHours=2"])]);
    assert.match(diff.problems[0]!.message, /different gcp blocks/);
    const same = checkConfig([arm("gcp-managed"), arm("gcp-managed")]);
    assert.ok(same.problems.some((p) => /same arm/.test(p.message)));
  });

  it("refuses unpinned images and warns about SSH open to the world", () => {
    // The managed default is built FROM the baseline's digest: pinned by construction.
    const built = planStack("gcp-managed", [MY_IP]);
    assert.ok(built.plan.engines.every((e) => e.build));
    const ok = checkConfig([
      { stack: "gcp-managed", config: built.loaded.config, plan: built.plan },
    ]);
    assert.deepEqual(ok.problems, []);
    const { loaded, plan } = planStack("gcp-managed", [
      "gcp.sshSourceRanges=[0.0.0.0/0]",
      "engine.images.baseline=vllm/vllm-openai:v0.14.0",
    ]);
    const r = checkConfig([{ stack: "gcp-managed", config: loaded.config, plan }]);
    assert.ok(r.problems.some((p) => /not pinned by digest/.test(p.message)));
    assert.ok(r.warnings.some((w) => /whole internet/.test(w.message)));
  });

  it("finds credentials the way the Google provider does (presence only)", () => {
    const none = { env: {}, exists: () => false, home: "/h" };
    assert.equal(checkGcloudCredentials(none).length, 1);
    assert.deepEqual(
      checkGcloudCredentials({
        ...none,
        exists: (p) => p === "/h/.config/gcloud/application_default_credentials.json",
      }),
      [],
    );
    assert.deepEqual(
      checkGcloudCredentials({ ...none, env: { GOOGLE_OAUTH_ACCESS_TOKEN: "x" } }),
      [],
    );
    assert.match(
      checkGcloudCredentials({ ...none, env: { GOOGLE_APPLICATION_CREDENTIALS: "/nope.json" } })[0]!
        .message,
      /does not exist/,
    );
  });

  it("Pulumi CLI and local backend passphrase", () => {
    assert.equal(checkPulumiCli(() => undefined).length, 1);
    assert.deepEqual(
      checkPulumiCli(() => "/usr/bin/pulumi"),
      [],
    );
    assert.equal(checkBackend({ PULUMI_BACKEND_URL: "file://~" }).length, 1);
    assert.deepEqual(
      checkBackend({ PULUMI_BACKEND_URL: "file://~", PULUMI_CONFIG_PASSPHRASE: "" }),
      [],
    );
  });

  it("cost lines state hourly, dead-man cap and that it is an estimate", () => {
    const { lines } = costLines([arm("gcp-managed")]);
    assert.match(lines[0]!, /estimate/);
    assert.match(lines[0]!, /\$\d+\.\d\d\/h/);
    assert.match(lines[1]!, /deletes itself after 4 h/);
  });

  it("run keys are generated once, stored as secrets, and reused", async () => {
    const store = new Map<string, { value: string; secret?: boolean }>();
    const ks = {
      getConfig: async (k: string) => store.get(k),
      setConfig: async (e: Record<string, { value: string; secret?: boolean }>) => {
        for (const [k, v] of Object.entries(e)) store.set(k, v);
      },
    };
    const a = await ensureRunKeys(ks, "r1");
    assert.equal(store.get("sshPrivateKey")?.secret, true);
    assert.equal(store.get("sshHostPrivateKey")?.secret, true);
    assert.equal(store.get("sshHostPublicKey")?.secret ?? false, false);
    assert.deepEqual(await ensureRunKeys(ks, "r1"), a);
    const dir = await mkdtemp(join(tmpdir(), "ib-keys-"));
    try {
      const d = await writeLocalSshFiles("r1", a, "203.0.113.9", dir);
      const { stat, readFile } = await import("node:fs/promises");
      assert.equal((await stat(join(d, "id_ed25519"))).mode & 0o777, 0o600);
      assert.match(
        await readFile(join(d, "known_hosts"), "utf8"),
        /^203\.0\.113\.9 ssh-ed25519 \S+\n$/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("config entries: objects as JSON, token secret, provider project", () => {
    const { loaded } = planStack("gcp-managed", [
      "gcp.project=p1",
      "hfToken=hf_abcdefghijklmnopqrstuvwx",
    ]);
    const e = configEntries(loaded.config);
    assert.equal(e.target?.value, "gcp-vm");
    assert.equal(JSON.parse(e.gcp!.value).project, "p1");
    assert.deepEqual(e.hfToken, { value: "hf_abcdefghijklmnopqrstuvwx", secret: true });
    assert.equal(e["gcp:project"]?.value, "p1");
  });
});

const manifest = (
  over: Partial<Omit<InfraRun, "infra">> & { state?: InfraRun["infra"]["state"] },
  dir = "/tmp/x",
): InfraRun => ({
  runId: over.runId ?? "ib-1",
  dir: join(dir, over.runId ?? "ib-1"),
  stacks: over.stacks ?? ["gcp-managed"],
  target: "gcp-vm",
  createdAt: "2026-11-24T10:00:00.000Z",
  updatedAt: "2026-11-24T10:00:00.000Z",
  infra: {
    state: over.state ?? "kept",
    pulumiStack: over.runId ?? "ib-1",
    workDir: "/tmp/x",
    network: "inferbench",
    billing: { hourlyUsd: 88.49 },
  },
});

describe("status and destroy", () => {
  it("status: age and accrued estimate of live runs only", () => {
    const rows = statusRows(
      [manifest({}), manifest({ runId: "ib-2", state: "destroyed" })],
      new Date("2026-11-24T11:30:00.000Z"),
    );
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.age, "1h30m");
    assert.equal(rows[0]!.accruedUsd, "~$132.74");
    assert.equal(formatAge(59_000), "0m");
  });

  it("destroy selects live runs by stack or id and audits after destroying", async () => {
    const all = [
      manifest({}),
      manifest({ runId: "ib-2", state: "destroyed" }),
      manifest({ runId: "ib-3", stacks: ["gcp-baseline", "gcp-managed"] }),
    ];
    assert.deepEqual(
      selectRuns(all, { stack: "gcp-managed" }).map((m) => m.runId),
      ["ib-1", "ib-3"],
    );
    assert.deepEqual(selectRuns(all, { run: "ib-2" }), []);

    const root = await mkdtemp(join(tmpdir(), "ib-destroy-"));
    try {
      await mkdir(join(root, "ib-1"), { recursive: true });
      const m = { runId: "ib-1", status: "complete", command: { stack: "gcp-managed" } };
      await writeFile(
        join(root, "ib-1", "manifest.json"),
        JSON.stringify(m as Partial<RunManifest>),
      );
      const calls: string[] = [];
      const fake = { calls } as unknown as StackOps;
      Object.assign(fake, {
        cancel: async () => calls.push("cancel"),
        refresh: async () => calls.push("refresh"),
        destroy: async () => calls.push("destroy"),
        remove: async () => calls.push("remove"),
      });
      const r = await destroyRuns([manifest({}, root)], {
        automation: { stack: async () => fake },
        auditor: { leftovers: async () => [] },
        log: createLogger("t", () => {}),
        sleep: async () => {},
        teardownSsh: async () => assert.fail("not an ssh run"),
      });
      assert.deepEqual(r.destroyed, ["ib-1"]);
      assert.deepEqual(calls, ["destroy", "remove"]);
      // A completed run's measurements are immutable, but its infra state still follows the host.
      const after = new RunStore("ib-1", root).readManifest();
      assert.equal(after.infra?.state, "destroyed");
      assert.equal(after.status, "complete");
      assert.ok(after.infra?.billing?.end, "the billing window is closed");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("destroy: when Pulumi cannot destroy, what is labelled with the run is deleted with gcloud, then audited", async () => {
    const root = await mkdtemp(join(tmpdir(), "ib-destroy-"));
    try {
      await mkdir(join(root, "ib-1"), { recursive: true });
      const m = { runId: "ib-1", status: "failed", command: { stack: "gcp-managed" } };
      await writeFile(join(root, "ib-1", "manifest.json"), JSON.stringify(m));
      const fake = {
        cancel: async () => {},
        refresh: async () => {},
        destroy: async () => {
          throw new Error("googleapi: Error 500");
        },
        remove: async () => {},
      } as unknown as StackOps;
      let left = [
        { kind: "instance" as const, name: "inferbench-ib-1-vm", location: "us-central1-a" },
      ];
      const removed: string[] = [];
      const r = await destroyRuns([manifest({ state: "destroy-failed" }, root)], {
        automation: { stack: async () => fake },
        auditor: {
          leftovers: async () => left,
          remove: async (found) => {
            removed.push(...found.map((f) => f.name));
            left = [];
            return found.map((f) => ({
              command: `gcloud compute instances delete ${f.name}`,
              ok: true,
            }));
          },
        },
        log: createLogger("t", () => {}),
        sleep: async () => {},
        teardownSsh: async () => assert.fail("not an ssh run"),
      });
      assert.deepEqual(removed, ["inferbench-ib-1-vm"]);
      assert.deepEqual(r.cleanup, [], "nothing left after the gcloud cleanup");
      const after = new RunStore("ib-1", root).readManifest();
      assert.equal(after.infra?.state, "destroy-failed", "Pulumi's state still lists it");
      assert.deepEqual(after.infra?.leftovers, []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("destroy: a run kept on an ssh host takes its projects off the host", async () => {
    const root = await mkdtemp(join(tmpdir(), "ib-destroy-"));
    try {
      await mkdir(join(root, "ib-9"), { recursive: true });
      const ssh = { host: "gpu-box", port: 22, user: "bench", remoteRoot: "/opt/inferbench" };
      const m = {
        runId: "ib-9",
        status: "complete",
        target: "ssh",
        arms: ["baseline", "managed"],
        command: { stack: "my-box" },
        config: { baseline: { ssh }, managed: { ssh } },
        infra: { state: "kept", host: "gpu-box" },
      };
      await writeFile(join(root, "ib-9", "manifest.json"), JSON.stringify(m));
      const asked: unknown[] = [];
      const run = { ...manifest({ runId: "ib-9", state: "kept" }, root), target: "ssh" };
      const r = await destroyRuns([run], {
        automation: { stack: async () => assert.fail("no Pulumi for an ssh run") },
        auditor: { leftovers: async () => assert.fail("no gcloud for an ssh run") },
        log: createLogger("t", () => {}),
        sleep: async () => {},
        teardownSsh: async (config, runId, arms) => {
          asked.push([config.ssh.host, runId, arms]);
          return [];
        },
      });
      assert.deepEqual(asked, [["gpu-box", "ib-9", ["baseline", "managed"]]]);
      assert.deepEqual(r.destroyed, ["ib-9"]);
      assert.equal(new RunStore("ib-9", root).readManifest().infra?.state, "destroyed");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("parses gcloud list output into leftovers", () => {
    const json = JSON.stringify([
      { name: "vm1", zone: "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a" },
    ]);
    assert.deepEqual(parseGcloudList("instance", json), [
      { kind: "instance", name: "vm1", location: "us-central1-a" },
    ]);
  });

  it("commands register with help text and validate their options", async () => {
    const program = new Command().exitOverride();
    registerDestroy(program);
    registerStatus(program);
    const destroy = program.commands.find((c) => c.name() === "destroy")!;
    assert.match(destroy.helpInformation(), /--run <run-id>/);
    assert.match(
      program.commands.find((c) => c.name() === "status")!.helpInformation(),
      /accrued cost/,
    );
    await assert.rejects(program.parseAsync(["node", "x", "destroy"]), /--stack <name> or --run/);
    const dir = await mkdtemp(join(tmpdir(), "ib-status-"));
    try {
      await writeFile(join(dir, "ignored.txt"), "");
      await program.parseAsync(["node", "x", "status", "--results-dir", dir, "--json"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

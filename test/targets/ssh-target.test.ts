/**
 * The ssh target: host checks (pure and over a real SSH connection on loopback), refusals before
 * anything is uploaded, the host's run lock, and a whole run through the one run path. The real
 * engine, sshd and dockerd are exercised by `npm run rehearse:vm`.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { driverOf, judgeHost, parseNvidiaSmi } from "../../compose/host-checks.ts";
import { type ExperimentOptions, runExperiment } from "../../experiments/execute.ts";
import { UserError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/logger.ts";
import { generateEd25519 } from "../../lib/ssh/keys.ts";
import { RunStore } from "../../results/store.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import { planStack } from "../../targets/plan-stack.ts";
import { type SshTargetDeps, sshTarget, teardownKeptSshRun } from "../../targets/ssh/index.ts";
import { type FakeDockerHost, fakeDockerHost } from "../../testkit/fake-docker-host.ts";
import { startSshServer, type TestSshServer } from "../../testkit/ssh-server.ts";

describe("ssh host checks (pure)", () => {
  const base = { docker: "26.1.5", compose: "2.26.1", uid: 1000, gid: 1000, gpus: [] };
  it("refuses an engine or compose too old for the kit's files, naming the fix", () => {
    const c = judgeHost({ ...base, docker: "20.10.24+dfsg1" }, { gpuIds: [], rehearsal: true });
    const docker = c.find((x) => x.check === "docker")!;
    assert.equal(docker.ok, false);
    assert.match(docker.hint!, /engine ≥ 25\.0 \(healthcheck\.start_interval\)/);
    assert.equal(
      judgeHost({ ...base, compose: "2.12.2" }, { gpuIds: [], rehearsal: true })[1]!.ok,
      false,
    );
    assert.equal(
      judgeHost({ ...base, compose: undefined }, { gpuIds: [], rehearsal: true })[1]!.ok,
      false,
    );
    assert.ok(judgeHost(base, { gpuIds: [], rehearsal: true }).every((x) => x.ok));
  });
  it("in real mode the plan's GPU ids must exist; a rehearsal needs none", () => {
    const gpus = parseNvidiaSmi(
      "0, NVIDIA H100 80GB HBM3, 81559\n1, NVIDIA H100 80GB HBM3, 81559\n",
    );
    assert.deepEqual(gpus[1], { index: 1, name: "NVIDIA H100 80GB HBM3", memoryMiB: 81559 });
    const withDriver = parseNvidiaSmi("0, NVIDIA H100 80GB HBM3, 81559, 550.90.07\n");
    assert.equal(withDriver[0]!.driver, "550.90.07");
    assert.equal(driverOf(withDriver), "550.90.07");
    assert.equal(driverOf(gpus), "unknown");
    assert.equal(driverOf([]), "none");
    const few = judgeHost({ ...base, gpus }, { gpuIds: [0, 1, 2], rehearsal: false });
    assert.match(
      few.find((x) => x.check === "gpus")!.message,
      /needs GPU ids 2 that the host does not have/,
    );
    const none = judgeHost(
      { ...base, nvidiaSmi: "nvidia-smi: not found" },
      { gpuIds: [0], rehearsal: false },
    );
    assert.match(
      none.find((x) => x.check === "gpus")!.message,
      /no GPU found \(nvidia-smi: nvidia-smi: not found\)/,
    );
    assert.equal(
      judgeHost(base, { gpuIds: [0], rehearsal: true }).some((x) => x.check === "gpus"),
      false,
    );
  });
});

describe("ssh target through the one run path", () => {
  let srv: TestSshServer;
  let root: string;
  let fake: FakeDockerHost;
  let keyFile: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "ib-ssh-target-"));
    srv = await startSshServer(join(root, "remote"), "bench");
    fake = fakeDockerHost(srv, root);
    keyFile = join(root, "id_ed25519");
    writeFileSync(keyFile, srv.clientPrivateKey, { mode: 0o600 });
  });
  after(async () => {
    await fake.stopAll();
    await srv.close();
    await rm(root, { recursive: true, force: true });
  });
  beforeEach(() => {
    fake.docker = "26.1.5";
    fake.runnerCommands.length = 0;
    srv.commands.length = 0;
  });

  const sets = (extra: string[] = []) => [
    "target=ssh",
    "rehearsal=true",
    "ssh.host=127.0.0.1",
    "ssh.user=bench",
    `ssh.keyFile=${keyFile}`,
    "ssh.hourlyUsd=2.5",
    "models=[{name: llama-3.1-8b, hfPath: meta-llama/Llama-3.1-8B-Instruct, replicas: 1, profile: llama-3.1-8b@h100}]",
    "gpus.count=1",
    "workload.loadPoints=[{concurrency: 2}]",
    "workload.requestCount=6",
    "workload.outputTokensMean=8",
    "workload.outputTokensStddev=0",
    "run.warmupRequests=1",
    "engine.emulatorStartupDelaySec=0",
    ...extra,
  ];

  function options(
    extra: string[] = [],
    port = srv.port,
    hostKey = srv.hostPublicKey,
    deps: Partial<SshTargetDeps> = {},
  ): ExperimentOptions {
    return {
      stacks: ["local"],
      overrides: [...sets(extra), `ssh.port=${port}`, `ssh.hostKey=${hostKey}`],
      quick: false,
      interleave: true,
      runsDir: join(root, "runs"),
      log: createLogger("t", () => {}),
      signal: new AbortController().signal,
      planArm: (s, o) => {
        const { plan, loaded } = planStack(s, o);
        return { plan, config: loaded.config };
      },
      target: (_p, configs) => sshTarget(configs as Record<string, StackConfig>, deps),
    };
  }
  /** Commands that deploy or run something (a version probe is not one). */
  const uploads = () => srv.commands.filter((c) => /docker compose .*(up|run) /.test(c));

  it("a whole run: host checks, both arms swapped on one host, runner as the SSH user, lock released", async () => {
    const r = await runExperiment(options());
    assert.deepEqual(r.leftovers, []);
    const store = RunStore.open(r.runId, join(root, "runs"));
    const m = store.readManifest();
    assert.equal(m.status, "complete");
    assert.equal(m.target, "ssh");
    assert.equal(m.infra?.state, "destroyed");
    assert.equal(m.infra?.hostFacts?.docker, "26.1.5");
    assert.equal(m.infra?.billing?.hourlyUsd, 2.5);
    assert.ok(store.isPointComplete("baseline", "concurrency2", 0));
    assert.ok(store.isPointComplete("managed", "concurrency2", 0));
    assert.equal(fake.runnerCommands.length, 2, "one runner call per arm block");
    // The runner writes as the SSH user, so that user can read and later remove the results.
    const compose = readFileSync(join(store.armDir("managed"), "bundle", "compose.yaml"), "utf8");
    assert.match(compose, /user: 1000:1000/);
    assert.ok(srv.commands.some((c) => c.startsWith("rm -rf") && c.includes(".inferbench-lock")));
  });

  it("the HF token: a gated model without one is refused before connecting; a Pulumi secret is read back and reaches only hf.env", async () => {
    const saved = process.env.HF_TOKEN;
    delete process.env.HF_TOKEN;
    try {
      await assert.rejects(
        runExperiment(options(["rehearsal=false"])),
        (e: unknown) =>
          e instanceof UserError &&
          /models\[0\]\.hfPath = meta-llama\/Llama-3\.1-8B-Instruct is a gated Hugging Face model and no token is set/.test(
            e.message,
          ) &&
          /pulumi config set --secret hfToken/.test(e.hint ?? ""),
      );
      assert.deepEqual(srv.commands, [], "refused before connecting");
      const token = "hf_decryptedfromthestack0123456789";
      const asked: string[] = [];
      // A service that logs the token: the logs come home, the token does not.
      fake.logs = `engine-0 | HF_TOKEN=${token}\nrouter | ready\n`;
      const r = await runExperiment(
        options(["hfToken={secure: v1:AAAAciphertext}"], srv.port, srv.hostPublicKey, {
          automation: {
            readProjectConfig: async (stack, key) => {
              asked.push(`${stack}:${key}`);
              return token;
            },
          },
        }),
      );
      assert.deepEqual(asked, ["local:hfToken"]);
      const hfEnv = readFileSync(
        join(srv.root, "/opt/inferbench/inferbench-managed/hf.env"),
        "utf8",
      );
      assert.match(hfEnv, new RegExp(`^HF_TOKEN=${token}$`, "m"));
      const files = (readdirSync(r.dir, { recursive: true }) as string[]).filter((f) =>
        statSync(join(r.dir, f)).isFile(),
      );
      assert.ok(files.length > 5);
      const leaked = files.filter((f) => readFileSync(join(r.dir, f), "utf8").includes(token));
      assert.deepEqual(leaked, [], "the token is in no file of the run folder");
      assert.match(
        readFileSync(join(r.dir, "managed", "host", "compose.log"), "utf8"),
        /router \| ready/,
      );
    } finally {
      fake.logs = "";
      if (saved !== undefined) process.env.HF_TOKEN = saved;
    }
  });

  it("refusals before any upload: wrong host key, missing key file, docker too old", async () => {
    const other = generateEd25519("impostor").publicKey;
    await assert.rejects(
      runExperiment(options([], srv.port, other)),
      (e: unknown) =>
        e instanceof UserError &&
        /does not match the expected \(pinned\) host key/.test(e.message) &&
        /ssh-keyscan/.test(e.hint ?? ""),
    );
    await assert.rejects(
      runExperiment(options([`ssh.keyFile=${join(root, "nope")}`])),
      /ssh\.keyFile: cannot read/,
    );
    fake.docker = "20.10.24";
    await assert.rejects(
      runExperiment(options()),
      /host checks failed[\s\S]*docker: Docker engine 20\.10\.24[\s\S]*engine ≥ 25/,
    );
    assert.deepEqual(uploads(), [], "nothing was deployed");
  });

  it("run.budgetUsd reached mid-run: stopped like Ctrl-C, torn down, failed with the accrual named", async () => {
    // $10,000/h against a $5 budget: spent 1.8 s after provision, while the engines start or the runner runs.
    let released!: () => void;
    fake.onRunner = () =>
      new Promise<void>((r) => {
        released = r;
        setTimeout(r, 20_000).unref();
      });
    let runId = "";
    try {
      await assert.rejects(
        runExperiment(options(["ssh.hourlyUsd=10000", "run.budgetUsd=5"])),
        (e: unknown) => {
          runId = /--resume (\S+)/.exec((e as UserError).hint ?? "")?.[1] ?? "";
          return (
            e instanceof UserError &&
            e.exitCode === 1 &&
            /run\.budgetUsd reached: ~\$[5-9]\.\d\d accrued at \$10000\/h, budget \$5\.00/.test(
              e.message,
            )
          );
        },
      );
    } finally {
      released?.();
      fake.onRunner = undefined;
    }
    const m = RunStore.open(runId, join(root, "runs")).readManifest();
    assert.equal(m.status, "failed");
    assert.match(m.error ?? "", /budgetUsd reached/);
    assert.equal(m.infra?.state, "destroyed");
    assert.deepEqual(m.infra?.leftovers, []);
    assert.equal(existsSync(join(srv.root, "/opt/inferbench/.inferbench-lock")), false);
  });

  it("--keep leaves the host locked for the run; teardownKeptSshRun (inferbench destroy) releases it, nothing left", async () => {
    const r = await runExperiment({ ...options(), keep: true });
    const m = RunStore.open(r.runId, join(root, "runs")).readManifest();
    assert.equal(m.infra?.state, "kept");
    const lock = join(srv.root, "/opt/inferbench/.inferbench-lock");
    assert.ok(existsSync(lock), "the kept host stays locked for this run");
    const config = (m.config as Record<string, StackConfig>)[m.arms[0]!]!;
    const left = await teardownKeptSshRun(config, r.runId, m.arms);
    assert.deepEqual(left, []);
    assert.equal(fake.deployments.size, 0);
    assert.equal(existsSync(lock), false);
  });

  it("a second run against a host another run holds is refused, naming the holder", async () => {
    const lock = join(srv.root, "opt/inferbench/.inferbench-lock");
    mkdirSync(lock, { recursive: true });
    writeFileSync(
      join(lock, "owner.json"),
      JSON.stringify({ runId: "20261201-000000-aaaa", since: "2026-12-01T00:00:00Z" }),
    );
    try {
      await assert.rejects(runExperiment(options()), /in use by run 20261201-000000-aaaa/);
      assert.deepEqual(uploads(), []);
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  });
});

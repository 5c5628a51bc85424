import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  BUNDLE_HASH_FILE,
  deployBundle,
  hfEnvFile,
  parseComposePs,
  projectsToStop,
  StartupFailedError,
  unhealthyServices,
  waitForHostReady,
} from "../../compose/remote.ts";
import { renderCompose } from "../../compose/render.ts";
import {
  create as createDeployment,
  type DeploymentInputs,
  diffDeployment,
  read as readDeployment,
} from "../../infra/deploy-provider.ts";
import { createLogger } from "../../lib/logger.ts";
import { generateEd25519 } from "../../lib/ssh/keys.ts";
import { connectSsh, type ExecResult, type RemoteHost } from "../../lib/ssh/ssh.ts";
import type { ExperimentStep } from "../../runner/plan-file.ts";
import { composeHost, runnerRunCommand } from "../../targets/compose-host.ts";
import type { TargetContext } from "../../targets/types.ts";
import { startSshServer, type TestSshServer } from "../../testkit/ssh-server.ts";
import { fixturePlan } from "../compose/fixture-plan.ts";

describe("deploy decisions", () => {
  it("projectsToStop keeps the target project and ignores foreign ones", () => {
    const ls = JSON.stringify([
      { Name: "inferbench-baseline", Status: "running(7)" },
      { Name: "inferbench-managed", Status: "running(7)" },
      { Name: "someone-else", Status: "running(1)" },
    ]);
    assert.deepEqual(projectsToStop(ls, "inferbench-managed"), ["inferbench-baseline"]);
    assert.deepEqual(projectsToStop("", "x"), []);
    assert.deepEqual(projectsToStop("not json", "x"), []);
  });

  it("hf.env holds both token names, or nothing", () => {
    assert.equal(hfEnvFile(undefined), "");
    assert.equal(hfEnvFile("hf_x"), "HF_TOKEN=hf_x\nHUGGING_FACE_HUB_TOKEN=hf_x\n");
    assert.throws(() => hfEnvFile("a\nb"));
  });

  it("the deploy resource redeploys on plan, host or token change only", () => {
    const base = {
      host: "1.2.3.4",
      port: 22,
      user: "u",
      privateKey: "k",
      hostPublicKey: "h",
      remoteRoot: "/opt/inferbench",
      projectName: "inferbench-managed",
      files: {},
      bundleHash: "a",
      hfToken: "t",
      waitTimeoutSec: 100,
      readyTimeoutSec: 100,
      startupMarker: true,
    };
    assert.equal(diffDeployment(base, { ...base }).changes, false);
    assert.deepEqual(diffDeployment(base, { ...base, bundleHash: "b" }).changed, ["bundleHash"]);
    assert.deepEqual(diffDeployment(base, { ...base, hfToken: "u" }).changed, ["hfToken"]);
    assert.deepEqual(diffDeployment(base, { ...base, bundleHash: "b" }).replaces, []);
  });
});

describe("ComposeDeployment provider against a scripted host", () => {
  const inputs: DeploymentInputs = {
    host: "10.0.0.2",
    port: 22,
    user: "u",
    privateKey: "k",
    hostPublicKey: "h",
    remoteRoot: "/srv/ib",
    projectName: "inferbench-managed",
    files: { "compose.yaml": "services: {}\n" },
    bundleHash: "recorded",
    hfToken: "",
    waitTimeoutSec: 60,
    readyTimeoutSec: 60,
    startupMarker: false,
  };
  /** Answers commands by the first pattern that matches; records what ran and what was uploaded. */
  const scripted = (answers: [RegExp, Partial<ExecResult>][]) => {
    const ran: string[] = [];
    const uploads: string[] = [];
    const host: RemoteHost = {
      exec: async (cmd) => {
        ran.push(cmd);
        const a = answers.find(([re]) => re.test(cmd))?.[1] ?? { code: 1, stderr: "unknown" };
        return { code: 0, signal: undefined, stdout: "", stderr: "", ...a };
      },
      upload: async (dir) => {
        uploads.push(dir);
      },
      download: async () => [],
      close: () => {},
    };
    return { host, ran, uploads, connect: async () => host };
  };
  const ps = (health: string) =>
    [
      { Service: "router", State: "running", Health: health },
      { Service: "engine-0", State: "running", Health: "healthy" },
    ]
      .map((x) => JSON.stringify(x))
      .join("\n");

  it("refresh: no container of the project means the deployment is gone (blank id)", async () => {
    const h = scripted([[/ps -a --format json/, { stdout: "" }]]);
    assert.deepEqual(await readDeployment("id", inputs, h.connect), {});
  });

  it("refresh: a healthy project reports the host's bundle hash, an unhealthy one none", async () => {
    const healthy = scripted([
      [/ps -a --format json/, { stdout: ps("healthy") }],
      [/bundle-sha256/, { stdout: "livehash\n" }],
    ]);
    const r = await readDeployment("id", inputs, healthy.connect);
    assert.equal(r.id, "id");
    assert.equal(r.props?.bundleHash, "livehash");
    assert.equal(diffDeployment(r.props!, inputs).changes, true); // the next up redeploys
    const sick = scripted([
      [/ps -a --format json/, { stdout: ps("unhealthy") }],
      [/bundle-sha256/, { stdout: "recorded\n" }],
    ]);
    assert.equal((await readDeployment("id", inputs, sick.connect)).props?.bundleHash, "");
  });

  it("refresh: an unreachable host keeps the state as it is", async () => {
    const r = await readDeployment("id", inputs, async () => {
      throw new Error("ECONNREFUSED");
    });
    assert.deepEqual(r, { id: "id", props: inputs });
  });

  it("create on a host without the startup marker checks it first: too old an engine uploads nothing", async () => {
    const h = scripted([
      [/id -u/, { stdout: "1000\n1000\n" }],
      [/nvidia-smi/, { code: 127, stderr: "nvidia-smi: not found" }],
      [/Server.Version/, { stdout: "20.10.24+dfsg1\n" }],
      [/compose version/, { stdout: "2.26.1\n" }],
    ]);
    await assert.rejects(
      createDeployment({ ...inputs, hostChecks: { gpuIds: [0], rehearsal: false } }, h.connect),
      (e: Error) =>
        /host checks failed on 10\.0\.0\.2/.test(e.message) &&
        /Docker engine 20\.10/.test(e.message) &&
        /no GPU found \(nvidia-smi: nvidia-smi: not found\)/.test(e.message),
    );
    assert.deepEqual(h.uploads, []);
    assert.ok(!h.ran.some((c) => /compose .* up/.test(c)));
  });
});

describe("waitForHostReady", () => {
  const fakeHost = (stdout: string): RemoteHost => ({
    exec: async (): Promise<ExecResult> => ({ code: 0, signal: undefined, stdout, stderr: "" }),
    upload: async () => {},
    download: async () => [],
    close: () => {},
  });

  it("retries connection failures and 'waiting' until ready", async () => {
    let t = 0;
    const answers = ["refused", "waiting\n", "ready\n"];
    const host = await waitForHostReady(
      async () => {
        const a = answers.shift()!;
        if (a === "refused") throw new Error("ECONNREFUSED");
        return fakeHost(a);
      },
      {
        timeoutMs: 60_000,
        sleep: async (ms) => {
          t += ms;
        },
        now: () => t,
      },
    );
    assert.ok(host);
    assert.equal(answers.length, 0);
  });

  it("stops at once when the startup script failed", async () => {
    await assert.rejects(
      waitForHostReady(async () => fakeHost("failed\nline 40: apt-get install (exit 100)\n"), {
        timeoutMs: 60_000,
        sleep: async () => {},
      }),
      (e: unknown) => e instanceof StartupFailedError && /apt-get install/.test(e.message),
    );
  });

  it("gives up at the deadline with the last reason", async () => {
    let t = 0;
    await assert.rejects(
      waitForHostReady(
        async () => {
          throw new Error("ETIMEDOUT");
        },
        {
          timeoutMs: 30_000,
          intervalMs: 10_000,
          sleep: async (ms) => {
            t += ms;
          },
          now: () => t,
        },
      ),
      /not ready after 30 s: ETIMEDOUT/,
    );
  });
});

describe("deploy and benchmark over a loopback SSH server", () => {
  let srv: TestSshServer;
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "ib-deploy-"));
    srv = await startSshServer(join(root, "remote"));
  });
  after(async () => {
    await srv.close();
    await rm(root, { recursive: true, force: true });
  });
  const connect = () =>
    connectSsh({
      host: "127.0.0.1",
      port: srv.port,
      username: "inferbench",
      privateKey: srv.clientPrivateKey,
      hostPublicKey: srv.hostPublicKey,
      readyTimeoutMs: 5000,
    });

  it("uploads the bundle with a 0600 hf.env, stops the other arm, waits for health", async () => {
    srv.commands.length = 0;
    srv.setExec(async (cmd, io) => {
      if (cmd.startsWith("docker compose ls")) {
        io.stdout(
          JSON.stringify([{ Name: "inferbench-baseline" }, { Name: "inferbench-managed" }]),
        );
      }
      return 0;
    });
    const rendered = renderCompose(fixturePlan("managed"));
    const host = await connect();
    try {
      const hash = await deployBundle(host, {
        remoteRoot: "/opt/inferbench",
        projectName: rendered.projectName,
        files: rendered.files,
        hfToken: "hf_secret_token_value_123456",
        waitTimeoutSec: rendered.waitTimeoutSec,
      });
      const dir = join(srv.root, "opt/inferbench/inferbench-managed");
      assert.equal((await stat(join(dir, "hf.env"))).mode & 0o777, 0o600);
      assert.match(
        await readFile(join(dir, "hf.env"), "utf8"),
        /^HF_TOKEN=hf_secret_token_value_123456$/m,
      );
      assert.equal(
        await readFile(join(dir, "compose.yaml"), "utf8"),
        rendered.files["compose.yaml"],
      );
      assert.equal((await readFile(join(dir, BUNDLE_HASH_FILE), "utf8")).trim(), hash);
      assert.deepEqual(srv.commands, [
        "docker compose ls -a --format json",
        "docker compose -p inferbench-baseline --profile runner down --remove-orphans",
        `cd /opt/inferbench/inferbench-managed && echo $$ > .inferbench-up.pid && exec docker compose -p inferbench-managed up -d --wait --wait-timeout ${rendered.waitTimeoutSec} --remove-orphans`,
        "cd /opt/inferbench/inferbench-managed && docker compose -p inferbench-managed ps -a --format json",
      ]);
      assert.ok(!srv.commands.join("\n").includes("hf_secret"), "token leaked into a command line");
    } finally {
      host.close();
    }
  });

  /** Just what the compose host reads of a run context: the run id and where arms live. */
  const fakeCtx = (runId: string): TargetContext =>
    ({
      store: { runId, armDir: (arm: string) => join(root, "local", runId, arm) },
      signal: new AbortController().signal,
      log: createLogger("t", () => {}),
    }) as unknown as TargetContext;

  it("completed points come home while the runner runs; an incomplete local copy is replaced whole", async () => {
    const runId = "20261201-130000-beef";
    const remote = join(srv.root, `/opt/inferbench/inferbench-managed/results/${runId}/managed`);
    const ctx = fakeCtx(runId);
    const local = ctx.store.armDir("managed");
    // An earlier attempt's half-downloaded point (no point.json): replaced whole, not merged.
    mkdirSync(join(local, "points", "concurrency8"), { recursive: true });
    writeFileSync(join(local, "points", "concurrency8", "stale.txt"), "half");
    let homeDuringRun = false;
    srv.setExec(async (cmd, io) => {
      const find = /^cd (\S+) 2>\/dev\/null && find points/.exec(cmd);
      if (find) {
        const dir = join(srv.root, find[1]!, "points");
        if (!existsSync(dir)) return 1;
        for (const d of readdirSync(dir))
          if (existsSync(join(dir, d, "point.json"))) io.stdout(`points/${d}/point.json\n`);
        return 0;
      }
      if (!cmd.includes("--profile runner run")) return 0;
      for (const p of ["concurrency2", "concurrency8"]) {
        mkdirSync(join(remote, "points", p), { recursive: true });
        writeFileSync(join(remote, "points", p, "profile_export.json"), `{"p":"${p}"}`);
        writeFileSync(join(remote, "points", p, "point.json"), "{}");
      }
      // The runner "goes on" until the points are home (bounded).
      const t0 = Date.now();
      while (Date.now() - t0 < 10_000 && !existsSync(join(local, "points/concurrency2/point.json")))
        await new Promise((r) => setTimeout(r, 100));
      homeDuringRun = existsSync(join(local, "points/concurrency2/point.json"));
      return 0;
    });
    const host = await connect();
    try {
      await composeHost(() => host).runArm("managed", [{ index: 0 }] as ExperimentStep[], ctx);
      assert.ok(homeDuringRun, "a completed point was brought home before the runner ended");
      for (const p of ["concurrency2", "concurrency8"])
        assert.equal(
          readFileSync(join(local, "points", p, "profile_export.json"), "utf8"),
          `{"p":"${p}"}`,
        );
      assert.ok(!existsSync(join(local, "points", "concurrency8", "stale.txt")));
      assert.ok(!existsSync(join(local, ".incoming")));
    } finally {
      host.close();
    }
  });

  it("the runner runs next to the engines for the given steps; a failure names the arm", async () => {
    const ran: string[] = [];
    srv.setExec(async (cmd, io) => {
      ran.push(cmd);
      if (cmd.includes("--profile runner run")) {
        io.stderr("boom\n");
        return 7;
      }
      return 0;
    });
    const host = await connect();
    try {
      const onHost = composeHost(() => host);
      const ctx = fakeCtx("20261201-120000-abcd");
      await assert.rejects(
        onHost.runArm("managed", [{ index: 1 }, { index: 3 }] as ExperimentStep[], ctx),
        /runner failed on the host \(exit 7\) for managed: boom/,
      );
      assert.equal(
        ran.at(-1),
        runnerRunCommand(
          "/opt/inferbench/inferbench-managed",
          "inferbench-managed",
          "managed",
          "20261201-120000-abcd",
          [1, 3],
        ),
      );
      assert.match(ran.at(-1)!, / --out \/results\/20261201-120000-abcd --resume --steps 1,3$/);
    } finally {
      host.close();
    }
  });

  it("up --wait is not trusted alone: a service that never got healthy fails the deploy", async () => {
    const ps = [
      '{"Service":"router","State":"running","Health":"healthy"}',
      '{"Service":"llama-3.1-8b-0","State":"running","Health":"starting"}',
      '{"Service":"x","State":"exited","Health":""}',
    ].join("\n");
    assert.deepEqual(unhealthyServices(parseComposePs(ps)), [
      "llama-3.1-8b-0 (running, starting)",
      "x (exited)",
    ]);
    assert.deepEqual(parseComposePs('[{"Service":"a","State":"running","Health":""}]'), [
      { Service: "a", State: "running", Health: "" },
    ]);
    srv.setExec(async (cmd, io) => {
      if (cmd.includes(" ps -a --format json")) io.stdout(ps);
      return 0; // up --wait "succeeds", as compose 2.26 sometimes does
    });
    const host = await connect();
    try {
      await assert.rejects(
        deployBundle(host, {
          remoteRoot: "/opt/inferbench",
          projectName: "inferbench-managed",
          files: { "compose.yaml": "services: {}\n" },
          waitTimeoutSec: 5,
        }),
        /not healthy: llama-3\.1-8b-0 \(running, starting\), x \(exited\)/,
      );
    } finally {
      host.close();
    }
  });

  it("waiting for a host that presents another key ends in a refusal, never a connection", async () => {
    let t = 0;
    const impostor = generateEd25519("impostor").publicKey;
    await assert.rejects(
      waitForHostReady(
        () =>
          connectSsh({
            host: "127.0.0.1",
            port: srv.port,
            username: "inferbench",
            privateKey: srv.clientPrivateKey,
            hostPublicKey: impostor,
            readyTimeoutMs: 5000,
          }),
        {
          timeoutMs: 1,
          sleep: async (ms) => {
            t += ms;
          },
          now: () => t,
        },
      ),
      (e: unknown) => /does not match/.test((e as Error).message),
    );
  });
});

import assert from "node:assert/strict";
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
import { diffDeployment } from "../../infra/deploy-provider.ts";
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
    };
    assert.equal(diffDeployment(base, { ...base }).changes, false);
    assert.deepEqual(diffDeployment(base, { ...base, bundleHash: "b" }).changed, ["bundleHash"]);
    assert.deepEqual(diffDeployment(base, { ...base, hfToken: "u" }).changed, ["hfToken"]);
    assert.deepEqual(diffDeployment(base, { ...base, bundleHash: "b" }).replaces, []);
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
      const ctx = {
        store: { runId: "20261201-120000-abcd" },
        signal: new AbortController().signal,
        log: createLogger("t", () => {}),
      } as unknown as TargetContext;
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

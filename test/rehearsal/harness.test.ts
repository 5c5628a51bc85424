/**
 * The rehearsal harness's pure parts and its loopback egress proxy; hermetic (no root, no
 * install, no namespace). The real host is exercised in vm-host.test.ts.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { request } from "node:http";
import { type AddressInfo, connect, createServer as createTcpServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { parseComposePs } from "../../compose/remote.ts";
import { connectTarget, type EgressProxy, startEgressProxy } from "../../rehearsal/egress-proxy.ts";
import { smokeCompose } from "../../rehearsal/rehearse-vm.ts";
import {
  INSTALL_SCRIPT,
  parseKeyValues,
  parseTimings,
  VM_HOST_SCRIPT,
} from "../../rehearsal/vm-host.ts";

const ROOT = join(fileURLToPath(import.meta.url), "../../..");

describe("script output parsing", () => {
  it("reads KEY=VALUE lines and ignores the rest", () => {
    const kv = parseKeyValues("HOST=10.231.0.2\nnoise line\nDOCKER_HOST=unix:///a=b\nlower=x\n");
    assert.deepEqual(kv, { HOST: "10.231.0.2", DOCKER_HOST: "unix:///a=b" });
  });

  it("reads TIMING lines", () => {
    const t = parseTimings(
      "TIMING engine 11.820 installed\nTIMING total 0.004 done\nTIMING bad x y\n",
    );
    assert.deepEqual(t, [
      { step: "engine", seconds: 11.82, status: "installed" },
      { step: "total", seconds: 0.004, status: "done" },
    ]);
  });

  it("reads compose ps JSON as an array or one object per line", () => {
    const line = '{"Service":"web","State":"running","Health":"healthy","Name":"p-web-1"}';
    const expect = [{ Service: "web", State: "running", Health: "healthy" }];
    assert.deepEqual(parseComposePs(line), expect);
    assert.deepEqual(parseComposePs(`[${line}]`), expect);
    assert.deepEqual(parseComposePs(`${line}\n${line.replace("healthy", "starting")}`).length, 2);
    assert.deepEqual(parseComposePs("  \n"), []);
  });
});

describe("smoke compose project", () => {
  it("is valid compose-spec and uses start_interval and a GPU reservation", async () => {
    const schema = JSON.parse(
      await readFile(join(ROOT, "fixtures/schemas/compose-spec.json"), "utf8"),
    );
    const { $schema: _draft, ...body } = schema;
    const validate = new Ajv({ strict: false, allErrors: true, validateFormats: false }).compile(
      body,
    );
    const doc = parse(smokeCompose()) as {
      services: {
        web: { healthcheck: Record<string, unknown>; deploy: unknown; pull_policy: string };
      };
    };
    assert.ok(validate(doc), JSON.stringify(validate.errors));
    const web = doc.services.web;
    assert.equal(web.healthcheck.start_interval, "1s");
    // start_interval only matters when it is much shorter than the interval.
    assert.equal(web.healthcheck.interval, "60s");
    assert.equal(web.pull_policy, "never");
    assert.match(JSON.stringify(web.deploy), /"driver":"nvidia"/);
  });
});

describe("egress proxy (loopback)", () => {
  let echo: Server;
  let echoPort: number;
  let proxy: EgressProxy;
  before(async () => {
    echo = createTcpServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    echoPort = (echo.address() as AddressInfo).port;
    proxy = await startEgressProxy({ listenHost: "127.0.0.1", allow: [`127.0.0.1:${echoPort}`] });
  });
  after(async () => {
    await proxy.close();
    await new Promise((r) => echo.close(r));
  });

  const connectVia = (target: string, payload: string) =>
    new Promise<string>((resolve, reject) => {
      const s = connect(proxy.port, "127.0.0.1", () => {
        s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n${payload}`);
      });
      let got = "";
      s.on("data", (d) => {
        got += d.toString();
        if (got.includes(payload) || got.startsWith("HTTP/1.1 403")) s.end();
      });
      s.on("close", () => resolve(got));
      s.on("error", reject);
    });

  it("tunnels to an allowed target, data sent with the request included", async () => {
    const got = await connectVia(`127.0.0.1:${echoPort}`, "ping-123");
    assert.match(got, /^HTTP\/1\.1 200 Connection Established\r\n\r\n/);
    assert.ok(got.endsWith("ping-123"), got);
    assert.ok(proxy.tunnels.includes(`127.0.0.1:${echoPort}`));
  });

  it("refuses any other target", async () => {
    const got = await connectVia(`127.0.0.1:${echoPort + 1}`, "x");
    assert.match(got, /^HTTP\/1\.1 403/);
    assert.ok(proxy.refused.includes(`127.0.0.1:${echoPort + 1}`));
  });

  it("answers plain requests with 405", async () => {
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: proxy.port, path: "http://example.org/" },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      );
      req.on("error", reject);
      req.end();
    });
    assert.equal(status, 405);
  });

  it("parses CONNECT targets strictly", () => {
    assert.deepEqual(connectTarget("Registry.npmjs.org:443"), {
      host: "registry.npmjs.org",
      port: 443,
    });
    assert.deepEqual(connectTarget("[::1]:8080"), { host: "::1", port: 8080 });
    assert.equal(connectTarget("registry.npmjs.org"), undefined);
    assert.equal(connectTarget("a:0"), undefined);
    assert.equal(connectTarget("a:99999"), undefined);
    assert.equal(connectTarget(undefined), undefined);
  });
});

describe("scripts refuse bad input with exit 2", () => {
  const run = (script: string, args: string[]) =>
    spawnSync("bash", [script, ...args], {
      encoding: "utf8",
      env: { ...process.env, INFERBENCH_CACHE: "/nonexistent-cache" },
    });

  it("vm-host.sh: bad host name", () => {
    const r = run(VM_HOST_SCRIPT, ["up", "Bad_Name"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /host name 'Bad_Name'/);
  });

  it("vm-host.sh: unknown command", () => {
    assert.equal(run(VM_HOST_SCRIPT, ["reboot", "h1"]).status, 2);
  });

  it("install.sh --check: unknown step", () => {
    const r = run(INSTALL_SCRIPT, ["--check", "kubernetes"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown step 'kubernetes'/);
  });

  it("install.sh --check: says what is missing and installs nothing", () => {
    const r = run(INSTALL_SCRIPT, ["--check", "engine", "pulumi"]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /not cached under \/nonexistent-cache: engine pulumi/);
  });

  it("install.sh env: cache paths are keyed by version", () => {
    const kv = parseKeyValues(run(INSTALL_SCRIPT, ["env"]).stdout);
    assert.match(
      kv.ENGINE_ROOT!,
      /^\/nonexistent-cache\/docker-engine-26\.1\.5-containerd-1\.7\.24-compose-2\.26\.1\//,
    );
    assert.match(kv.PULUMI_BIN!, /^\/nonexistent-cache\/pulumi-v3\.248\.0\/bin\/pulumi$/);
  });
});

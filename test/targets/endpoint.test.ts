/**
 * The endpoint target: two running OpenAI-compatible servers (real engine-sim + router processes
 * on loopback, the router demanding an API key) measured through the one run path, and every
 * refusal a user meets before the first point: no key, a wrong key, a model the endpoint does
 * not serve, an emulated server called real. Also the schema and plan of an endpoint stack.
 */
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type ExperimentOptions, runExperiment } from "../../experiments/execute.ts";
import { UserError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/logger.ts";
import type { PointServerMetrics } from "../../results/server-metrics.ts";
import { RunStore } from "../../results/store.ts";
import { armDifferences } from "../../stacks/arm-differences.ts";
import { endpointTarget, engineNames } from "../../targets/endpoint/index.ts";
import { type LocalDeployment, launchLocal } from "../../targets/local/launch.ts";
import { planStack } from "../../targets/plan-stack.ts";

const KEY = "ib-test-endpoint-key-6f1c2a9d";
const MODEL =
  "models=[{name: llama-3.1-8b, hfPath: meta-llama/Llama-3.1-8B-Instruct, replicas: 1, profile: llama-3.1-8b@h100}]";
const SMALL = [
  MODEL,
  "gpus.count=1",
  "workload.loadPoints=[{concurrency: 2}, {concurrency: 4}]",
  "workload.requestCount=8",
  "workload.outputTokensMean=8",
  "workload.outputTokensStddev=0",
  "run.warmupRequests=1",
  "engine.emulatorStartupDelaySec=0",
];

/** Every file under a folder, as text (the key must be in none of them). */
function allText(dir: string): string {
  let out = "";
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    out += statSync(p).isDirectory() ? allText(p) : readFileSync(p, "utf8");
  }
  return out;
}

describe("endpoint target: running servers measured through the one run path", () => {
  let root: string;
  const servers: Partial<Record<"baseline" | "managed", LocalDeployment>> = {};
  const saved = process.env.INFERBENCH_ROUTER_API_KEY;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "ib-endpoint-"));
    // The routers read their key from the environment they start with.
    process.env.INFERBENCH_ROUTER_API_KEY = KEY;
    try {
      for (const mode of ["baseline", "managed"] as const) {
        const dir = join(root, "servers", mode);
        mkdirSync(dir, { recursive: true });
        const { plan } = planStack("local", [...SMALL, `mode=${mode}`], { env: {} });
        servers[mode] = await launchLocal(plan, { dir, log: createLogger("t", () => {}) });
      }
    } finally {
      if (saved === undefined) delete process.env.INFERBENCH_ROUTER_API_KEY;
      else process.env.INFERBENCH_ROUTER_API_KEY = saved;
    }
  });
  after(async () => {
    await Promise.all(Object.values(servers).map((s) => s?.stop()));
    await rm(root, { recursive: true, force: true });
  });

  const urls = () => ({ b: servers.baseline!, m: servers.managed! });
  const sets = (extra: string[] = []) => {
    const { b, m } = urls();
    return [
      ...SMALL,
      "target=endpoint",
      `endpoint.url={baseline: "${b.routerUrl}", managed: "${m.routerUrl}"}`,
      `endpoint.engineUrls={baseline: ["${Object.values(b.engineUrls)[0]}"], managed: ["${Object.values(m.engineUrls)[0]}"]}`,
      "endpoint.apiKeyEnv=IB_ENDPOINT_KEY",
      "endpoint.emulated=true",
      "endpoint.hourlyUsd=4",
      ...extra,
    ];
  };
  const options = (extra: string[] = [], env = { IB_ENDPOINT_KEY: KEY }): ExperimentOptions => ({
    stacks: ["local"],
    overrides: sets(extra),
    quick: false,
    interleave: true,
    runsDir: join(root, "runs"),
    log: createLogger("t", () => {}),
    signal: new AbortController().signal,
    planArm: (s, o) => {
      const { plan, loaded } = planStack(s, o, { env: {} });
      return { plan, config: loaded.config };
    },
    target: () => endpointTarget(env),
  });

  it("the servers really demand the key (so the run below proves it was sent)", async () => {
    const { b } = urls();
    const none = await fetch(`${b.routerUrl}/v1/models`);
    assert.equal(none.status, 401);
    const ok = await fetch(`${b.routerUrl}/v1/models`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    assert.equal(ok.status, 200);
  });

  it("a whole run: both endpoints measured per point, engines scraped, nothing to tear down, the key written nowhere", async () => {
    const r = await runExperiment(options());
    assert.deepEqual(r.leftovers, []);
    // allValid is not asserted: on a loaded machine the generator may lag (INVALID), as elsewhere.
    const store = RunStore.open(r.runId, join(root, "runs"));
    const m = store.readManifest();
    assert.equal(m.status, "complete");
    assert.equal(m.target, "endpoint");
    assert.equal(m.emulated, true);
    assert.equal(m.infra?.state, "none");
    assert.equal(m.infra?.billing?.hourlyUsd, 4);
    assert.ok(m.infra?.billing?.end, "the billing window is closed");
    assert.equal(m.infra?.hostFacts?.["baseline.url"], urls().b.routerUrl);
    assert.equal(m.infra?.hostFacts?.["managed.models"], "llama-3.1-8b");
    for (const arm of ["baseline", "managed"])
      for (const label of ["concurrency2", "concurrency4"]) {
        const dir = store.pointDir(arm, label, 0);
        const point = JSON.parse(readFileSync(join(dir, "point.json"), "utf8"));
        assert.equal(point.requestCount, 8, `${arm} ${label}`);
        assert.equal(point.errorCount, 0, `${arm} ${label}`);
        assert.deepEqual(Object.values(point.engineVersions), ["engine-sim"]);
        const sm = JSON.parse(
          readFileSync(join(dir, "server-metrics.json"), "utf8"),
        ) as PointServerMetrics;
        const engine = Object.keys(sm.after.texts).find((k) => k !== "router")!;
        assert.match(sm.after.texts[engine]!, /vllm:num_requests_running/);
      }
    // Both arms run side by side: per point, alternating which goes first.
    const plan = JSON.parse(readFileSync(store.file("plan.json"), "utf8"));
    assert.equal(plan.order, "per-point");
    assert.equal(plan.arms.baseline.endpoint.apiKeyEnv, "IB_ENDPOINT_KEY");
    assert.ok(r.comparison, "compare ran after the run");
    const diff = r.comparison!.arms!.differences;
    assert.deepEqual(
      diff.map((d) => d.what),
      ["endpoint URL"],
      "the arms differ only in which server was measured",
    );
    assert.ok(!allText(store.dir).includes(KEY), "the API key is in no file of the run");
  });

  it("refuses, before any point, a missing key, a wrong key and a model the endpoint does not serve", async () => {
    await assert.rejects(runExperiment(options([], {} as { IB_ENDPOINT_KEY: string })), (e) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, /endpoint\.apiKeyEnv: environment variable IB_ENDPOINT_KEY/);
      return true;
    });
    await assert.rejects(
      runExperiment(options([], { IB_ENDPOINT_KEY: "wrong-key-123456" })),
      (e) => {
        assert.match((e as Error).message, /baseline endpoint .* refused the key: HTTP 401/);
        assert.match((e as UserError).hint ?? "", /\$IB_ENDPOINT_KEY/);
        assert.ok(!(e as Error).message.includes("wrong-key-123456"));
        return true;
      },
    );
    await assert.rejects(
      runExperiment(options(["models=[{name: meta-llama/Llama-3.1-8B-Instruct}]"])),
      /does not serve meta-llama\/Llama-3\.1-8B-Instruct \(it serves: llama-3\.1-8b\)/,
    );
  });

  it("refuses to call engine-sim real: results of an emulated server are labelled EMULATED", async () => {
    await assert.rejects(runExperiment(options(["endpoint.emulated=false"])), (e) => {
      assert.equal((e as UserError).exitCode, 2);
      assert.match((e as Error).message, /the baseline endpoint is emulated: .* "engine-sim"/);
      assert.match((e as UserError).hint ?? "", /endpoint\.emulated: true/);
      return true;
    });
  });

  it("a base path is kept: requests, readiness and the model list go under it", async () => {
    // A gateway that serves each router under its own prefix (/a, /b) and 404s anything else.
    const seen: string[] = [];
    const { b, m } = urls();
    const gw = createServer((req, res) => {
      const url = req.url ?? "";
      const to = url.startsWith("/a/") ? b.routerUrl : url.startsWith("/b/") ? m.routerUrl : "";
      seen.push(`${req.method} ${url}`);
      if (!to) {
        res.writeHead(404).end();
        return;
      }
      const up = request(
        `${to}${url.slice(2)}`,
        { method: req.method, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on("error", () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => gw.listen(0, "127.0.0.1", r));
    const at = `http://127.0.0.1:${(gw.address() as AddressInfo).port}`;
    try {
      const r = await runExperiment(
        options([
          `endpoint.url={baseline: "${at}/a", managed: "${at}/b/"}`,
          "endpoint.engineUrls=[]",
        ]),
      );
      assert.ok(r.comparison, "measured and compared");
      assert.ok(seen.includes("GET /a/v1/models") && seen.includes("GET /b/v1/models"));
      assert.ok(seen.includes("POST /a/v1/chat/completions"));
      assert.ok(seen.includes("POST /b/v1/chat/completions"));
      assert.ok(!seen.some((s) => s.startsWith("POST /v1/")), "nothing went past the prefix");
    } finally {
      await new Promise((r) => gw.close(r));
    }
  });

  it("an unreachable endpoint is named with the fix", async () => {
    await assert.rejects(
      runExperiment(options(['endpoint.url="http://127.0.0.1:9"', "endpoint.engineUrls=[]"])),
      /baseline endpoint http:\/\/127\.0\.0\.1:9 cannot be reached/,
    );
  });
});

describe("endpoint stacks: schema and plan", () => {
  const plan = (extra: string[]) =>
    planStack("local", [...SMALL, "target=endpoint", ...extra], { env: {} });
  it("needs a URL, refuses credentials in it, and takes any served model name", () => {
    assert.throws(() => plan([]), /endpoint\.url: the endpoint target needs the server's base URL/);
    assert.throws(
      () => plan(['endpoint.url="http://user:pw@10.0.0.5:8000"']),
      /endpoint\.url: must not carry credentials/,
    );
    assert.throws(() => plan(['endpoint.url="ftp://10.0.0.5"']), /must be http or https/);
    const p = plan([
      'endpoint.url="https://gw.example.com/openai/"',
      "models=[{name: meta-llama/Llama-3.1-8B-Instruct, maxModelLen: 131072}]",
    ]).plan;
    assert.equal(p.endpoint!.url, "https://gw.example.com/openai");
    assert.deepEqual(p.engines, []);
    assert.deepEqual(p.runner.workload.models, ["meta-llama/Llama-3.1-8B-Instruct"]);
    assert.equal(p.emulated, false);
    assert.match(p.warnings.join("\n"), /endpoint\.engineUrls is empty: no server-side metrics/);
    // Where the kit deploys engines, names stay DNS-safe and hfPath/profile are required.
    assert.throws(
      () => planStack("local", ["models=[{name: meta-llama/Llama-3.1-8B-Instruct}]"], { env: {} }),
      (e: Error) =>
        /models\[0\]\.name: must be lowercase/.test(e.message) &&
        /models\[0\]\.hfPath: required where the kit deploys engines/.test(e.message) &&
        /models\[0\]\.profile: required/.test(e.message),
    );
  });
  it("one stack, two servers: the arms differ in the endpoint alone (not in router defaults)", () => {
    const two = (mode: string) =>
      plan([
        'endpoint.url={baseline: "http://10.0.0.5:8000", managed: "http://10.0.0.6:8000"}',
        `mode=${mode}`,
      ]).plan;
    const a = two("baseline");
    const b = two("managed");
    assert.equal(a.endpoint!.url, "http://10.0.0.5:8000");
    assert.equal(b.endpoint!.url, "http://10.0.0.6:8000");
    assert.deepEqual(armDifferences(a, b), [
      {
        factor: "endpoint",
        what: "endpoint URL",
        a: "http://10.0.0.5:8000",
        b: "http://10.0.0.6:8000",
      },
    ]);
  });
  it("the shipped endpoint stack plans both arms, each its own server, the key by name only", () => {
    const arms = ["baseline", "managed"].map(
      (m) => planStack("endpoint", [`mode=${m}`], { env: {} }).plan,
    );
    assert.deepEqual(
      arms.map((p) => p.endpoint!.url),
      ["http://vllm-a.internal:8000", "http://vllm-b.internal:8000"],
    );
    assert.equal(arms[0]!.endpoint!.apiKeyEnv, "INFERBENCH_ENDPOINT_API_KEY");
    assert.deepEqual(arms[0]!.runner.workload.models, ["meta-llama/Llama-3.1-8B-Instruct"]);
  });
  it("names engines by host:port, apart where two share a host", () => {
    assert.deepEqual(
      engineNames(["http://10.0.0.5:8000", "http://10.0.0.5:8001", "http://10.0.0.5:8000/b"]),
      {
        "10.0.0.5:8000": "http://10.0.0.5:8000",
        "10.0.0.5:8001": "http://10.0.0.5:8001",
        "10.0.0.5:8000/b": "http://10.0.0.5:8000/b",
      },
    );
  });
});

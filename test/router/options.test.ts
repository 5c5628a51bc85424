import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { UserError } from "../../lib/errors.ts";
import { DEFAULT_POLICY_OPTIONS } from "../../services/router/index.ts";
import { buildRouterConfig } from "../../services/router/options.ts";

const dir = mkdtempSync(join(tmpdir(), "router-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("serve router options", () => {
  it("builds a config from --backends", () => {
    const c = buildRouterConfig(
      {
        policy: "least-busy",
        backends: "m=http://127.0.0.1:9001",
        port: "0",
        pollIntervalMs: "50",
        host: "127.0.0.1",
      },
      {},
    );
    assert.equal(c.policy, "least-busy");
    assert.equal(c.pollIntervalMs, 50);
    assert.equal(c.port, 0);
    assert.deepEqual(c.backends, { m: [{ engine: "m-0", url: "http://127.0.0.1:9001" }] });
  });
  it("reads a plan's router section and the API key from the named env var", () => {
    const file = join(dir, "plan.json");
    writeFileSync(
      file,
      JSON.stringify({
        router: {
          policy: "prefix-aware",
          port: 8123,
          image: "x",
          pollIntervalMs: 1000,
          options: DEFAULT_POLICY_OPTIONS,
          backends: { m: [{ engine: "m-0", host: "127.0.0.1", port: 9001 }] },
          requestTimeoutMs: 1234,
        },
      }),
    );
    const c = buildRouterConfig({ plan: file, apiKeyEnv: "K", host: "0.0.0.0" }, { K: "s3cret" });
    assert.equal(c.policy, "prefix-aware");
    assert.equal(c.port, 8123);
    assert.equal(c.requestTimeoutMs, 1234);
    assert.equal(c.apiKey, "s3cret");
  });
  it("rejects bad input with UserError", () => {
    const bad: Record<string, unknown>[] = [
      { backends: "m=http://127.0.0.1:1" }, // no policy
      { policy: "random", backends: "m=http://127.0.0.1:1" },
      { policy: "least-busy" }, // neither backends nor plan
      { policy: "least-busy", backends: "m=http://127.0.0.1:1", pollIntervalMs: "10" },
      { policy: "least-busy", backends: "m=http://127.0.0.1:1", apiKeyEnv: "UNSET_VAR_X" },
      { plan: join(dir, "missing.json") },
    ];
    for (const raw of bad)
      assert.throws(
        () => buildRouterConfig({ host: "0.0.0.0", ...raw }, {}),
        UserError,
        JSON.stringify(raw),
      );
  });
});

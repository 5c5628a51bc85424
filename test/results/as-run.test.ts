/**
 * What the arms ran, beside what their plans asked: engine versions from the runner's GET /version,
 * image ids from the host. Differences in either are named, and count toward attribution.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { ranDifferences } from "../../results/compare.ts";
import type { Comparison } from "../../results/compare-types.ts";
import { ranTable } from "../../results/report/run-facts.ts";
import { engineVersions } from "../../runner/run-arm.ts";
import { attributionWarning } from "../../stacks/arm-differences.ts";
import { parseDeployedImages } from "../../targets/compose-host.ts";

describe("what ran", () => {
  it("parses the host's containers and image digests; a service's last container wins", () => {
    const containers = [
      "engine-0 vllm/vllm-openai@sha256:aaa sha256:111",
      "router inferbench/router:0.1.0 sha256:222",
      "",
      "garbage",
    ].join("\n");
    const inspect = [
      `sha256:111 ["vllm/vllm-openai@sha256:aaa"]`,
      "sha256:222 []",
      "sha256:333 not-json",
    ].join("\n");
    assert.deepEqual(parseDeployedImages(containers, inspect), [
      {
        service: "engine-0",
        image: "vllm/vllm-openai@sha256:aaa",
        id: "sha256:111",
        repoDigests: ["vllm/vllm-openai@sha256:aaa"],
      },
      { service: "router", image: "inferbench/router:0.1.0", id: "sha256:222", repoDigests: [] },
    ]);
  });

  it("keeps what the kit's own images say of themselves (the built managed image's labels)", () => {
    const containers =
      "engine-0 inferbench/vllm-kvcached:0.1.6-aaa sha256:111\nrouter r sha256:222\nsim s sha256:333";
    const inspect = [
      `sha256:111 [] {"dev.inferbench.base-image":"vllm/vllm-openai@sha256:aaa","dev.inferbench.kvcached":"0.1.6","maintainer":"x"}`,
      `sha256:222 ["r@sha256:bbb"] null`,
      "sha256:333 null {}",
    ].join("\n");
    const [engine, router, sim] = parseDeployedImages(containers, inspect);
    assert.deepEqual(engine!.labels, {
      "dev.inferbench.base-image": "vllm/vllm-openai@sha256:aaa",
      "dev.inferbench.kvcached": "0.1.6",
    });
    assert.deepEqual(engine!.repoDigests, []);
    assert.deepEqual(router!.repoDigests, ["r@sha256:bbb"]);
    assert.equal(router!.labels, undefined);
    assert.deepEqual(sim!.repoDigests, []);
  });

  it("differing engine versions or image ids are differences; equal ones are not", () => {
    const same = {
      engineVersions: ["0.11.0"],
      images: { "engine-0": "sha256:1", router: "sha256:r" },
    };
    assert.deepEqual(ranDifferences(same, structuredClone(same)), []);
    const d = ranDifferences(same, {
      engineVersions: ["0.10.2"],
      images: { "engine-0": "sha256:2", router: "sha256:r2" },
    });
    assert.deepEqual(
      d.map((x) => [x.factor, x.what, x.a, x.b]),
      [
        ["engine", "engine version (as run)", "0.11.0", "0.10.2"],
        ["engine", "engine-0 image (as run)", "sha256:1", "sha256:2"],
        ["router", "router image (as run)", "sha256:r", "sha256:r2"],
      ],
    );
    // KVCached on one side and another vLLM: one factor, still two things.
    const kv = {
      factor: "engine" as const,
      what: "engine env",
      a: "(none)",
      b: "ENABLE_KVCACHED=true",
    };
    assert.match(
      attributionWarning([
        kv,
        ...ranDifferences({ engineVersions: ["0.14.0"] }, { engineVersions: ["0.19.0"] }),
      ]) ?? "",
      /different vLLM versions \(0\.14\.0 vs 0\.19\.0\) as well as KVCached/,
    );
    assert.equal(attributionWarning([kv]), undefined);
    // Two factors differ: the delta cannot be attributed.
    assert.match(attributionWarning(d) ?? "", /More than one thing differs/);
    // A side that recorded nothing is not a difference.
    assert.deepEqual(ranDifferences(same, { engineVersions: [] }), []);
  });

  it("the report's table lists both arms' versions and images", () => {
    const t = ranTable({
      labels: { a: "baseline", b: "managed" },
      ran: {
        a: { engineVersions: ["0.11.0"], images: { router: "sha256:r" } },
        b: { engineVersions: ["0.11.0"] },
      },
    } as unknown as Comparison);
    assert.deepEqual(t?.rows, [
      ["engine versions (GET /version)", "0.11.0", "0.11.0"],
      ["router image", "sha256:r", "—"],
    ]);
    assert.equal(ranTable({ labels: { a: "a", b: "b" } } as unknown as Comparison), undefined);
  });

  it("engine versions: what /version says, or why there is none (never a guess)", async () => {
    const srv = createServer((q, s) => {
      if (q.url === "/version") s.end(JSON.stringify({ version: "0.11.0" }));
      else {
        s.statusCode = 404;
        s.end();
      }
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as AddressInfo).port;
    const bad = createServer((_q, s) => {
      s.statusCode = 404;
      s.end("no");
    });
    await new Promise<void>((r) => bad.listen(0, "127.0.0.1", r));
    const badPort = (bad.address() as AddressInfo).port;
    try {
      const v = await engineVersions({
        a: `http://127.0.0.1:${port}`,
        b: `http://127.0.0.1:${badPort}`,
        c: "http://127.0.0.1:1",
      });
      assert.equal(v.a, "0.11.0");
      assert.equal(v.b, "unknown (HTTP 404)");
      assert.match(v.c!, /^unknown \(/);
    } finally {
      srv.close();
      bad.close();
    }
  });
});

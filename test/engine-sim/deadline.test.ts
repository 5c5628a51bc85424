/** Every wait engine-sim makes has a bound, and the error names what it waited for (issue 19). */
import assert from "node:assert/strict";
import net from "node:net";
import { describe, it } from "node:test";
import { createLogger } from "../../lib/logger.ts";
import { DeadlineError, within } from "../../services/engine-sim/deadline.ts";
import { startEngineHost } from "../../services/engine-sim/host.ts";

const quiet = createLogger("test", () => {});
const spec = {
  name: "m",
  model: "m",
  gpus: [0],
  port: 0,
  kvcached: false,
  prefixCaching: true,
  emulator: { profile: "llama-3.1-8b@h100" },
};

describe("bounded waits", () => {
  it("within: the value in time, else a DeadlineError naming what was pending", async () => {
    assert.equal(await within(Promise.resolve(3), 100, "x"), 3);
    let pending = 2;
    const t0 = performance.now();
    await assert.rejects(
      within(new Promise(() => {}), 50, () => `waiting for ${pending} things`),
      (e: unknown) =>
        e instanceof DeadlineError &&
        e.message === "waiting for 2 things did not finish within 0.05 s",
    );
    assert.ok(performance.now() - t0 < 1000);
    pending = 0;
    await assert.rejects(within(Promise.reject(new Error("boom")), 50, "x"), /boom/);
  });

  it("an engine whose server never finishes closing fails its close() in time, naming it", async () => {
    const host = await startEngineHost([spec], {
      startupDelaySec: 0,
      log: quiet,
      closeTimeoutMs: 200,
    });
    const srv = host.engines.m!.server;
    const realClose = srv.close.bind(srv);
    // A server whose close callback never comes (what a leaked connection looks like).
    srv.close = (() => srv) as typeof srv.close;
    const t0 = performance.now();
    await assert.rejects(
      host.close(),
      /^Error: engine m: closing its server \(\d+ connections still open\) did not finish within 0\.2 s$/,
    );
    assert.ok(performance.now() - t0 < 2000);
    await new Promise<void>((r) => realClose(() => r()));
  });

  it("an engine that cannot bind in time fails startEngineHost, naming host and port", async () => {
    const listen = net.Server.prototype.listen;
    // A listen that never calls back, as a wedged network stack would.
    net.Server.prototype.listen = function (this: net.Server) {
      return this;
    } as typeof listen;
    const t0 = performance.now();
    try {
      await assert.rejects(
        startEngineHost([spec], { startupDelaySec: 0, log: quiet, listenTimeoutMs: 200 }),
        /engine m: listening on 127\.0\.0\.1:0 did not finish within 0\.2 s/,
      );
    } finally {
      net.Server.prototype.listen = listen;
    }
    assert.ok(performance.now() - t0 < 3000);
  });
});

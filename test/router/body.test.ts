/** Request-body plumbing: BodyBuffer, the off-thread parser, body deadlines, parser errors. */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { BodyBuffer, SEGMENT_BYTES } from "../../services/router/body.ts";
import { Deadlines } from "../../services/router/deadlines.ts";
import { OffThreadParser } from "../../services/router/parse-offthread.ts";
import { type ApiRequestRules, parseApiRequest } from "../../services/router/request.ts";
import { clientErrorResponse } from "../../services/router/respond.ts";

describe("BodyBuffer", () => {
  it("keeps the bytes in order whether or not the body spills (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 0, max: 200_000 }),
        (sizes, spillAt) => {
          const chunks = sizes.map((n, i) => Buffer.alloc(n, i % 251));
          const b = new BodyBuffer(spillAt);
          for (const c of chunks) b.push(c);
          const total = sizes.reduce((a, x) => a + x, 0);
          assert.equal(b.size, total);
          assert.equal(b.spilled, total > spillAt);
          const joined = Buffer.concat(b.segmented());
          assert.ok(joined.equals(Buffer.concat(chunks)));
          if (b.spilled) {
            assert.throws(() => b.whole());
            // Every segment owns its ArrayBuffer (transferable to the worker).
            for (const s of b.segmented()) {
              assert.equal(s.byteOffset, 0);
              assert.equal(s.buffer.byteLength, SEGMENT_BYTES);
            }
          } else assert.ok(b.whole().equals(joined));
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("OffThreadParser", () => {
  const parser = new OffThreadParser();
  after(() => parser.close());
  const rules: ApiRequestRules = { models: new Set(["m"]), hashPrefix: true, prefixBlockChars: 64 };
  const segmentsOf = (body: Buffer) => {
    const b = new BodyBuffer(0);
    for (let i = 0; i < body.length; i += 65_536) b.push(body.subarray(i, i + 65_536));
    return b.segmented();
  };

  it("gives the same answer as parsing inline, and hands back the same bytes", async () => {
    const big = Buffer.from(
      JSON.stringify({
        model: "m",
        user: "u1",
        messages: [{ role: "user", content: "abc ".repeat(700_000) }],
      }),
    );
    const expected = parseApiRequest(big, rules);
    const segs = segmentsOf(big);
    const { result, body } = await parser.parse(segs, rules);
    assert.deepEqual(result, expected);
    assert.ok(body.equals(big));
    assert.equal(segs[0]!.byteLength, 0, "segments were moved, not copied");
    const bad = await parser.parse(segmentsOf(big.subarray(0, big.length - 2)), rules);
    assert.equal(bad.result.ok, false);
    if (!bad.result.ok) assert.equal(bad.result.status, 400);
  });

  it("runs jobs in order and rejects once closed", async () => {
    const bodies = ["m", "x", "m"].map((model) => Buffer.from(JSON.stringify({ model })));
    const out = await Promise.all(bodies.map((b) => parser.parse(segmentsOf(b), rules)));
    assert.deepEqual(
      out.map((o) => o.result.ok),
      [true, false, true],
    );
    assert.equal(parser.queued(), 0);
    const closed = new OffThreadParser();
    await closed.close();
    await assert.rejects(closed.parse(segmentsOf(bodies[0]!), rules), /closed/);
  });
});

describe("Deadlines", () => {
  it("fires after its time (within a tick), never before, and not once deleted", async () => {
    const d = new Deadlines(80);
    after(() => d.stop());
    const t0 = performance.now();
    let firedAt = 0;
    let cancelledFired = false;
    d.add(() => (firedAt = performance.now() - t0));
    d.delete(d.add(() => (cancelledFired = true)));
    d.sweep(performance.now() + 79); // not yet due
    assert.equal(firedAt, 0);
    await new Promise((r) => setTimeout(r, 250));
    assert.ok(firedAt >= 79 && firedAt < 200, `fired after ${firedAt} ms`);
    assert.equal(cancelledFired, false);
    assert.equal(d.size, 0);
  });
});

describe("clientErrorResponse", () => {
  const statusOf = (code: string) => Number(clientErrorResponse(code)!.split(" ")[1]);
  it("maps parser errors to 431 / 413 / 408 / 400 with an OpenAI body, nothing on a reset", () => {
    assert.equal(statusOf("HPE_HEADER_OVERFLOW"), 431);
    assert.equal(statusOf("HPE_CHUNK_EXTENSIONS_OVERFLOW"), 413);
    assert.equal(statusOf("ERR_HTTP_REQUEST_TIMEOUT"), 408);
    assert.equal(statusOf("HPE_INVALID_METHOD"), 400);
    assert.equal(clientErrorResponse("ECONNRESET"), undefined);
    const raw = clientErrorResponse("HPE_INVALID_METHOD")!;
    const [head, body] = raw.split("\r\n\r\n") as [string, string];
    assert.match(head, /content-length: (\d+)/);
    assert.equal(Number(/content-length: (\d+)/.exec(head)![1]), Buffer.byteLength(body));
    assert.match(head, /connection: close/);
    const j = JSON.parse(body) as { error: { type: string; param: null } };
    assert.equal(j.error.type, "invalid_request_error");
    assert.equal(j.error.param, null);
  });
});

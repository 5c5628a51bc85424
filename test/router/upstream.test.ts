import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import {
  parseResponseHead,
  type UpstreamError,
  UpstreamPool,
} from "../../services/router/upstream.ts";

describe("parseResponseHead", () => {
  it("frames by transfer-encoding, then content-length, else until close", () => {
    const h = parseResponseHead(
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked",
    );
    assert.equal(h.bodyLength, -1);
    assert.equal(h.keepAlive, true);
    assert.deepEqual(h.headers, [
      "Content-Type",
      "text/event-stream",
      "Transfer-Encoding",
      "chunked",
    ]);
    assert.deepEqual(h.lower, ["content-type", "transfer-encoding"]);
    assert.equal(parseResponseHead("HTTP/1.1 200 OK\r\ncontent-length: 12").bodyLength, 12);
    const close = parseResponseHead("HTTP/1.1 200 OK\r\ncontent-type: x");
    assert.equal(close.bodyLength, -2);
    assert.equal(close.keepAlive, false);
    assert.equal(parseResponseHead("HTTP/1.1 204 No Content").bodyLength, 0);
    assert.equal(parseResponseHead("HTTP/1.1 304 Not Modified\r\ncontent-length: 5").bodyLength, 0);
    assert.equal(parseResponseHead("HTTP/1.1 100 Continue").bodyLength, 0);
  });
  it("keep-alive follows the version and the connection header", () => {
    assert.equal(parseResponseHead("HTTP/1.0 200 OK\r\ncontent-length: 1").keepAlive, false);
    assert.equal(
      parseResponseHead("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1").keepAlive,
      true,
    );
    assert.equal(
      parseResponseHead("HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 1").keepAlive,
      false,
    );
  });
  it("rejects malformed heads", () => {
    for (const bad of [
      "HTTP/2 200 OK",
      "HTTP/1.1 20 OK",
      "garbage",
      "HTTP/1.1 200 OK\r\nno colon",
      "HTTP/1.1 200 OK\r\n bad: name",
      "HTTP/1.1 200 OK\r\ncontent-length: 1x",
      "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2",
    ])
      assert.throws(() => parseResponseHead(bad), Error, bad);
  });
});

// ---- against a raw TCP server that writes exactly the bytes a test gives it --------------------

type Script = (sock: net.Socket, request: string) => void;
const servers: net.Server[] = [];
const pools: UpstreamPool[] = [];
after(() => {
  for (const p of pools) p.destroy();
  for (const s of servers) s.close();
});

async function rawServer(script: Script): Promise<{ port: number; accepted: () => number }> {
  let accepted = 0;
  const server = net.createServer((sock) => {
    accepted++;
    let buf = "";
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      const e = buf.indexOf("\r\n\r\n");
      if (e < 0) return;
      const m = /content-length: (\d+)/i.exec(buf.slice(0, e));
      const need = e + 4 + Number(m?.[1] ?? 0);
      if (buf.length < need) return;
      const req = buf.slice(0, need);
      buf = buf.slice(need);
      script(sock, req);
    });
    sock.on("error", () => {});
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as AddressInfo).port, accepted: () => accepted };
}

function pool(port: number, headersTimeoutMs = 5000): UpstreamPool {
  const p = new UpstreamPool("127.0.0.1", port, {
    connectTimeoutMs: 2000,
    headersTimeoutMs,
    keepAliveTimeoutMs: 4000,
  });
  pools.push(p);
  return p;
}

interface Got {
  status: number;
  headers: string[];
  body: Buffer;
  error?: UpstreamError;
}

function send(p: UpstreamPool, body = "{}"): Promise<Got> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    let headers: string[] = [];
    const t = setTimeout(() => resolve({ status: -1, headers, body: Buffer.concat(chunks) }), 5000);
    p.request("POST /v1/x HTTP/1.1\r\n", Buffer.from(body), {
      onResponseStart(s, h) {
        status = s;
        headers = h;
      },
      onData(c) {
        chunks.push(Buffer.from(c));
        return true;
      },
      onEnd() {
        clearTimeout(t);
        resolve({ status, headers, body: Buffer.concat(chunks) });
      },
      onError(error) {
        clearTimeout(t);
        resolve({ status, headers, body: Buffer.concat(chunks), error });
      },
    });
  });
}

/** Writes `pieces` one per event-loop turn so that reads see many different boundaries. */
function writePieces(sock: net.Socket, pieces: Buffer[]): void {
  let i = 0;
  const next = () => {
    if (i >= pieces.length || sock.destroyed) return;
    sock.write(pieces[i++]!);
    setImmediate(next);
  };
  next();
}

function split(b: Buffer, cuts: number[]): Buffer[] {
  const pts = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of pts) {
    if (c > prev) out.push(b.subarray(prev, c));
    prev = c;
  }
  if (prev < b.length) out.push(b.subarray(prev));
  return out;
}

describe("UpstreamPool", () => {
  it("decodes chunked bodies split anywhere, then reuses the connection", async () => {
    let response: Buffer[] = [];
    const srv = await rawServer((sock) => writePieces(sock, response));
    const p = pool(srv.port);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 6 }),
        fc.array(fc.nat(4000), { maxLength: 8 }),
        fc.boolean(),
        async (chunks, cuts, extras) => {
          const enc: Buffer[] = [
            Buffer.from(
              "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            ),
          ];
          for (const c of chunks) {
            enc.push(Buffer.from(`${c.length.toString(16)}${extras ? ";ext=1" : ""}\r\n`));
            enc.push(Buffer.from(c), Buffer.from("\r\n"));
          }
          enc.push(Buffer.from(extras ? "0\r\nx-trailer: 1\r\n\r\n" : "0\r\n\r\n"));
          response = split(Buffer.concat(enc), cuts);
          const got = await send(p);
          assert.equal(got.error, undefined);
          assert.equal(got.status, 200);
          assert.deepEqual(got.body, Buffer.concat(chunks.map((c) => Buffer.from(c))));
        },
      ),
      { numRuns: 60, seed: 42 },
    );
    assert.equal(srv.accepted(), 1, "one keep-alive connection for every exchange");
  });

  it("handles content-length, 204, interim 100 and bodies that run to close", async () => {
    let mode = "";
    const srv = await rawServer((sock) => {
      if (mode === "length")
        sock.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello");
      else if (mode === "204") sock.write("HTTP/1.1 204 No Content\r\n\r\n");
      else if (mode === "100")
        sock.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
      else sock.end("HTTP/1.1 200 OK\r\n\r\nuntil close");
    });
    const p = pool(srv.port);
    mode = "length";
    const a = await send(p);
    assert.equal(a.body.toString(), "hello");
    assert.deepEqual(a.headers, ["Content-Length", "5", "X-A", "1", "X-A", "2"]);
    mode = "204";
    assert.equal((await send(p)).status, 204);
    mode = "100";
    const c = await send(p);
    assert.equal(c.status, 200);
    assert.equal(c.body.toString(), "ok");
    assert.equal(srv.accepted(), 1);
    mode = "close";
    const d = await send(p);
    assert.equal(d.error, undefined);
    assert.equal(d.body.toString(), "until close");
  });

  it("reports refused connections, header timeouts, resets and bad heads by code", async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const deadPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    assert.equal((await send(pool(deadPort))).error?.code, "ECONNREFUSED");

    const hang = await rawServer(() => {});
    assert.equal((await send(pool(hang.port, 100))).error?.code, "UND_ERR_HEADERS_TIMEOUT");

    const reset = await rawServer((sock) => sock.destroy());
    const r = await send(pool(reset.port));
    assert.ok(r.error && r.status === 0, "closed before any response");

    const bad = await rawServer((sock) => sock.write("NOT HTTP\r\n\r\n"));
    assert.equal((await send(pool(bad.port))).error?.code, "UPSTREAM_PROTOCOL");

    const badChunk = await rawServer((sock) =>
      sock.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"),
    );
    const bc = await send(pool(badChunk.port));
    assert.equal(bc.status, 200);
    assert.equal(bc.error?.code, "UPSTREAM_PROTOCOL");
  });

  it("abort closes the upstream connection and calls nothing back", async () => {
    let serverClosed = false;
    const srv = await rawServer((sock) => {
      sock.on("close", () => {
        serverClosed = true;
      });
      sock.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n");
    });
    const p = pool(srv.port);
    let calls = 0;
    await new Promise<void>((resolve) => {
      const req = p.request("POST / HTTP/1.1\r\n", Buffer.from("{}"), {
        onResponseStart() {},
        onData() {
          setImmediate(() => {
            req.abort();
            resolve();
          });
          return true;
        },
        onEnd() {
          calls++;
        },
        onError() {
          calls++;
        },
      });
    });
    for (let i = 0; i < 100 && !serverClosed; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(serverClosed, true);
    assert.equal(calls, 0);
    assert.equal(p.size(), 0);
  });
});

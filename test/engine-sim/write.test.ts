import assert from "node:assert/strict";
import { createServer, type ServerResponse } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { describe, it } from "node:test";
import { writeChunk } from "../../services/engine-sim/server.ts";

const TIMEOUT = 10_000;
const CHUNKS = ['data: {"a":" word"}\n\n', 'data: {"b":"ünï"}\n\n', "", "data: [DONE]\n\n"];

/** Raw bytes of one HTTP exchange (two pipelined requests when `pipelined`). */
async function rawExchange(
  write: (res: ServerResponse, s: string) => void,
  version: "1.1" | "1.0",
  pipelined: boolean,
): Promise<{ bytes: string; resWrites: number }> {
  let resWrites = 0;
  const server = createServer((_req, res) => {
    res.sendDate = false; // no Date header, so the two exchanges compare byte for byte
    const orig = res.write.bind(res) as (s: string) => boolean;
    res.write = ((s: string) => {
      resWrites++;
      return orig(s);
    }) as typeof res.write;
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.flushHeaders();
    let i = 0;
    const next = () => {
      if (i < CHUNKS.length - 1) {
        write(res, CHUNKS[i++]!);
        setImmediate(next);
      } else res.end(CHUNKS[i]);
    };
    next();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  try {
    const bytes = await new Promise<string>((resolve, reject) => {
      const sock = connect(port, "127.0.0.1");
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error("timeout"));
      }, TIMEOUT);
      const req = `POST / HTTP/${version}\r\nHost: x\r\ncontent-length: 0\r\n${pipelined ? "" : "connection: close\r\n"}\r\n`;
      sock.write(pipelined ? req + req.replace("\r\n\r\n", "\r\nconnection: close\r\n\r\n") : req);
      let out = "";
      sock.setEncoding("latin1");
      sock.on("data", (d: string) => {
        out += d;
      });
      sock.on("close", () => {
        clearTimeout(timer);
        resolve(out);
      });
      sock.on("error", reject);
    });
    return { bytes, resWrites };
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

describe("writeChunk", () => {
  for (const [version, pipelined] of [
    ["1.1", false],
    ["1.1", true],
    ["1.0", false],
  ] as const)
    it(`writes the same bytes as res.write (HTTP/${version}${pipelined ? ", pipelined" : ""})`, async () => {
      const fast = await rawExchange(writeChunk, version, pipelined);
      const plain = await rawExchange((res, s) => res.write(s), version, pipelined);
      assert.equal(fast.bytes, plain.bytes);
      // Every response of the exchange is complete.
      const n = fast.bytes.split("data: [DONE]").length - 1;
      assert.equal(n, pipelined ? 2 : 1, fast.bytes);
      // The direct socket path is the one taken for a plain HTTP/1.1 stream.
      if (version === "1.1" && !pipelined) assert.equal(fast.resWrites, 1); // the empty chunk
      assert.equal(plain.resWrites, n * (CHUNKS.length - 1));
    });
});

/**
 * No single hostile request may stall the router for other clients: while a huge, malformed,
 * oversized or slow body is in flight, a probe client keeps sending small requests through the
 * same router and none of them may take 50 ms or more.
 *
 * The router runs as its own process (services/router/main.ts, as in its container), so the
 * hostile client's own work in this process cannot be mistaken for the router's; the replica
 * here drains bodies without parsing them. On a shared machine the scheduler alone can delay a
 * probe, so a case gets up to three tries; a router that blocks (JSON.parse of 30 MiB takes 80–500 ms
 * here) fails them all.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const STALL_LIMIT_MS = 50;
const MiB = 1024 * 1024;

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A replica that reads and discards each body, then answers a small JSON completion. */
async function drainingReplica(): Promise<string> {
  const server = http.createServer((req, res) => {
    if (req.url === "/metrics") {
      res.end(
        'vllm:num_requests_running{model_name="m"} 0\nvllm:num_requests_waiting{model_name="m"} 0\n',
      );
      return;
    }
    req.resume();
    req.on("end", () => {
      const body = '{"id":"x","choices":[{"text":"ok"}]}';
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
cleanups.push(() => agent.destroy());
const PROBE_BODY = JSON.stringify({ model: "m", prompt: "ping", max_tokens: 1 });

function probeOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(
      { host: "127.0.0.1", port, path: "/v1/completions", method: "POST", agent },
      (res) => {
        res.resume();
        res.on("end", () =>
          res.statusCode === 200
            ? resolve(performance.now() - t0)
            : reject(new Error(`probe ${res.statusCode}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(PROBE_BODY);
  });
}

/** Probes back to back (2 ms apart) until `stop` resolves; returns every latency. */
async function probeDuring(port: number, stop: Promise<unknown>): Promise<number[]> {
  let done = false;
  void stop.finally(() => (done = true));
  const lat: number[] = [];
  while (!done) {
    lat.push(await probeOnce(port));
    await new Promise((r) => setTimeout(r, 2));
  }
  return lat;
}

/**
 * Sends `head` + `body` on a raw socket (optionally dripping) and resolves with the response's
 * status as soon as its status line arrives. The socket is not half-closed: Node's server takes a
 * client's FIN as the client leaving and drops its request.
 */
function hostile(port: number, head: string, body: Buffer[], gapMs = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    let got = "";
    s.on("data", (d) => {
      got += d.toString("latin1");
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(got);
      if (m) {
        resolve(Number(m[1]));
        s.destroy();
      }
    });
    s.on("error", () => {});
    s.on("close", () => reject(new Error(`closed without a response (${got.length} bytes)`)));
    s.on("connect", () => {
      s.write(head);
      let i = 0;
      const next = () => {
        if (s.destroyed || i >= body.length) return;
        s.write(body[i++]!);
        if (gapMs > 0) setTimeout(next, gapMs);
        else next();
      };
      next();
    });
    setTimeout(() => s.destroy(), 20_000).unref();
  });
}

const head = (len: number | "chunked") =>
  `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${
    len === "chunked" ? "transfer-encoding: chunked" : `content-length: ${len}`
  }\r\n\r\n`;

/** ~30 MiB chat body whose prompt the prefix policy has to read. */
function hugeChat(valid: boolean): Buffer {
  const content = "lorem ipsum dolor sit amet ".repeat(Math.ceil((30 * MiB) / 27));
  const json = JSON.stringify({ model: "m", messages: [{ role: "user", content }] });
  return Buffer.from(valid ? json : json.slice(0, -3));
}

function chunked(total: number, size: number): Buffer[] {
  const chunk = Buffer.alloc(size, 0x20);
  const frame = Buffer.concat([
    Buffer.from(`${size.toString(16)}\r\n`),
    chunk,
    Buffer.from("\r\n"),
  ]);
  return Array.from({ length: Math.ceil(total / size) }, () => frame);
}

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
let port = 0;

/** The router as a process; resolves with its port once it listens. */
async function startRouterProcess(args: string[]): Promise<number> {
  const child: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", "services/router/main.ts", ...args],
    { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] },
  );
  cleanups.push(() => {
    child.kill("SIGKILL");
  });
  let err = "";
  return new Promise((resolve, reject) => {
    child.stderr!.on("data", (c: Buffer) => {
      err += c.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
      if (m) resolve(Number(m[1]));
    });
    child.on("exit", (code) => reject(new Error(`router exited ${code}: ${err}`)));
  });
}

describe("one hostile request does not stall other clients", () => {
  it("starts a router process in front of a draining replica", async () => {
    const url = await drainingReplica();
    port = await startRouterProcess([
      "--policy",
      "prefix-aware",
      "--backends",
      `m=${url},m=${url}`,
      "--port",
      "0",
      "--poll-interval-ms",
      "50",
      "--max-body-bytes",
      String(32 * MiB),
      "--body-timeout-ms",
      "400",
    ]);
    for (let i = 0; i < 20; i++) await probeOnce(port); // warm up connections and JIT
  });

  const valid = hugeChat(true);
  const malformed = hugeChat(false);
  const cases: [string, () => Promise<number>, number][] = [
    ["a 30 MiB JSON body (routed)", () => hostile(port, head(valid.length), [valid]), 200],
    ["30 MiB of malformed JSON", () => hostile(port, head(malformed.length), [malformed]), 400],
    [
      "a 100 MiB streamed body (over the cap)",
      () => hostile(port, head("chunked"), chunked(100 * MiB, MiB)),
      413,
    ],
    [
      "a slow body (one byte per 20 ms)",
      () =>
        hostile(
          port,
          head(1000),
          chunked(1000, 1).map((b) => b.subarray(3, 4)),
          20,
        ),
      408,
    ],
  ];
  for (const [what, send, status] of cases)
    it(`${what}: answered ${status}, every probe under ${STALL_LIMIT_MS} ms`, async (t) => {
      let worst = Number.POSITIVE_INFINITY;
      for (let attempt = 0; attempt < 3 && worst >= STALL_LIMIT_MS; attempt++) {
        const h = send();
        const lat = await probeDuring(port, h);
        assert.equal(await h, status);
        assert.ok(lat.length >= 3, `only ${lat.length} probes ran`);
        worst = Math.max(...lat);
        t.diagnostic(`attempt ${attempt}: ${lat.length} probes, worst ${worst.toFixed(1)} ms`);
      }
      assert.ok(worst < STALL_LIMIT_MS, `a probe took ${worst.toFixed(1)} ms`);
    });
});

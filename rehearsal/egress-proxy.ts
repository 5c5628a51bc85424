/**
 * A CONNECT-only HTTP proxy on this machine's end of a rehearsal host's veth pair. The host's
 * namespace has no route out, so a `docker build` there that must fetch packages (the kit's
 * `npm ci`) gets HTTPS_PROXY pointing here; only the listed host:port pairs are tunnelled, and TLS
 * stays end to end (the build trusts this machine's CA bundle through the base image).
 */
import { createServer, type IncomingMessage } from "node:http";
import { connect, type Socket } from "node:net";

export interface EgressProxy {
  /** `http://<host>:<port>` for HTTPS_PROXY. */
  url: string;
  port: number;
  /** Tunnels opened and refused so far (`host:port`). */
  tunnels: string[];
  refused: string[];
  close(): Promise<void>;
}

/** `host:port` of a CONNECT request target, or undefined when it is not one. */
export function connectTarget(url: string | undefined): { host: string; port: number } | undefined {
  const m = /^\[?([A-Za-z0-9.:-]+?)\]?:(\d{1,5})$/.exec(url ?? "");
  if (!m) return undefined;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1]!.toLowerCase(), port } : undefined;
}

export async function startEgressProxy(opts: {
  /** Address to listen on (the veth's machine-side address; 127.0.0.1 in tests). */
  listenHost: string;
  /** Allowed targets as `host:port`, e.g. `registry.npmjs.org:443`. */
  allow: string[];
  port?: number;
}): Promise<EgressProxy> {
  const allow = new Set(opts.allow.map((a) => a.toLowerCase()));
  const sockets = new Set<Socket>();
  const tunnels: string[] = [];
  const refused: string[] = [];
  const server = createServer((_req, res) => {
    res.writeHead(405, { "content-type": "text/plain" }).end("CONNECT only\n");
  });
  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    const t = connectTarget(req.url);
    const key = t ? `${t.host}:${t.port}` : String(req.url);
    if (!t || !allow.has(key)) {
      refused.push(key);
      client.end("HTTP/1.1 403 Forbidden\r\n\r\n");
      return;
    }
    const upstream = connect(t.port, t.host);
    let established = false;
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
    upstream.once("connect", () => {
      established = true;
      tunnels.push(key);
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => {
      if (!established && client.writable) client.end("HTTP/1.1 502 Bad Gateway\r\n\r\n");
      else client.destroy();
    });
    client.on("close", () => upstream.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.listenHost, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    url: `http://${opts.listenHost}:${port}`,
    port,
    tunnels,
    refused,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

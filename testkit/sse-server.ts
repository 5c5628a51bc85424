/**
 * A tiny OpenAI-compatible SSE server for load generator tests and benchmarks (loopback only).
 * Streams a role chunk, one chunk per output token (" hello"), a finish chunk, a usage chunk when
 * asked, then [DONE]. Records what it received.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SseServerOptions {
  /** Output tokens when the request has no max_tokens. */
  defaultTokens?: number;
  /** Delay between tokens, ms (0 = write all at once). */
  tokenDelayMs?: number;
  /** Return this HTTP status for requests whose index (0-based) satisfies the predicate. */
  failWhen?: (index: number) => number | undefined;
  /** Keep received requests (body + headers) for assertions. */
  record?: boolean;
}

export interface SseServer {
  url: string;
  port: number;
  received: { body: Record<string, unknown>; headers: IncomingMessage["headers"] }[];
  count: number;
  close(): Promise<void>;
}

const TOKEN = " hello";

export async function startSseServer(opts: SseServerOptions = {}): Promise<SseServer> {
  const state: SseServer = {
    url: "",
    port: 0,
    received: [],
    count: 0,
    close: async () => {},
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const index = state.count++;
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
      } catch {
        res.writeHead(400, { "content-type": "application/json" });
        res.end('{"error":{"message":"bad json"}}');
        return;
      }
      if (opts.record) state.received.push({ body, headers: req.headers });
      const fail = opts.failWhen?.(index);
      if (fail !== undefined) {
        res.writeHead(fail, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: `injected failure ${fail}` } }));
        return;
      }
      const n =
        typeof body["max_tokens"] === "number"
          ? (body["max_tokens"] as number)
          : (opts.defaultTokens ?? 16);
      const chat = req.url?.includes("chat") ?? true;
      const model = String(body["model"] ?? "m");
      const promptTokens = 7;
      if (!body["stream"]) {
        const text = TOKEN.repeat(n);
        const choice = chat
          ? { index: 0, message: { role: "assistant", content: text }, finish_reason: "length" }
          : { index: 0, text, finish_reason: "length" };
        res.writeHead(200, { "content-type": "application/json", "x-inferbench-backend": "sim-0" });
        res.end(
          JSON.stringify({
            id: "x",
            object: chat ? "chat.completion" : "text_completion",
            model,
            choices: [choice],
            usage: {
              prompt_tokens: promptTokens,
              completion_tokens: n,
              total_tokens: promptTokens + n,
            },
          }),
        );
        return;
      }
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-inferbench-backend": "sim-0",
      });
      const ev = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
      const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
        ev(
          chat
            ? {
                id: "x",
                object: "chat.completion.chunk",
                model,
                choices: [{ index: 0, delta, finish_reason: finish }],
              }
            : {
                id: "x",
                object: "text_completion",
                model,
                choices: [{ index: 0, text: delta["content"] ?? "", finish_reason: finish }],
              },
        );
      const tail = () => {
        let t = chunk({}, "length");
        const so = body["stream_options"] as Record<string, unknown> | undefined;
        if (so?.["include_usage"])
          t += ev({
            id: "x",
            object: "chat.completion.chunk",
            model,
            choices: [],
            usage: {
              prompt_tokens: promptTokens,
              completion_tokens: n,
              total_tokens: promptTokens + n,
            },
          });
        return `${t}data: [DONE]\n\n`;
      };
      const delay = opts.tokenDelayMs ?? 0;
      if (delay <= 0) {
        let all = chat ? chunk({ role: "assistant" }) : "";
        for (let i = 0; i < n; i++) all += chunk({ content: TOKEN });
        res.end(all + tail());
        return;
      }
      if (chat) res.write(chunk({ role: "assistant" }));
      let i = 0;
      const tick = () => {
        if (res.destroyed) return;
        if (i < n) {
          res.write(chunk({ content: TOKEN }));
          i++;
          setTimeout(tick, delay);
        } else res.end(tail());
      };
      setTimeout(tick, delay);
    });
  };
  const server: Server = createServer({ keepAliveTimeout: 60_000 }, handler);
  await new Promise<void>((resolve) =>
    server.listen({ port: 0, host: "127.0.0.1", backlog: 8192 }, resolve),
  );
  const port = (server.address() as AddressInfo).port;
  state.port = port;
  state.url = `http://127.0.0.1:${port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

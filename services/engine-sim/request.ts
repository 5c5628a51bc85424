/**
 * Request validation for engine-sim's OpenAI endpoints, pure (no I/O, no tokenizer): a raw
 * chat/completions body becomes a typed `EngineRequest` or an OpenAI-format error, and a prompt's
 * token count is checked against the context the way vLLM checks it.
 */
import { z } from "zod";

/** An error answered in vLLM's (OpenAI's) shape: `{"error":{message,type,param,code}}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = status === 404
      ? "NotFoundError"
      : status === 503
        ? "ServiceUnavailableError"
        : "BadRequestError",
  ) {
    super(message);
  }
}

/** vLLM ≥ 0.10.1 (PR #22099) nests the error object, as OpenAI does. */
export function errorBody(status: number, message: string, type: string): string {
  return JSON.stringify({ error: { message, type, param: null, code: status } });
}

export type EndpointKind = "chat" | "completions";

const num = z.number().nullish();
const common = {
  model: z.string({ error: "model must be a string" }),
  max_tokens: z.number().int().min(1).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z
    .looseObject({
      include_usage: z.boolean().nullish(),
      continuous_usage_stats: z.boolean().nullish(),
    })
    .nullish(),
  ignore_eos: z.boolean().nullish(),
  min_tokens: z.number().int().min(0).nullish(),
  n: z.number().int().min(1).nullish(),
  temperature: num,
  top_p: num,
  top_k: z.number().int().nullish(),
  presence_penalty: num,
  frequency_penalty: num,
  seed: z.number().int().nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  user: z.string().nullish(),
};

const contentPart = z.looseObject({ type: z.string(), text: z.string().optional() });
export const chatSchema = z.looseObject({
  ...common,
  messages: z
    .array(
      z.looseObject({
        role: z.string(),
        content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
      }),
    )
    .min(1, "messages must not be empty"),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
});

export const completionSchema = z.looseObject({
  ...common,
  prompt: z.union([
    z.string(),
    z.array(z.string()),
    z.array(z.number().int().min(0)),
    z.array(z.array(z.number().int().min(0))),
  ]),
  logprobs: z.number().int().nullish(),
  echo: z.boolean().nullish(),
});

type ChatBody = z.infer<typeof chatSchema>;
type CompletionBody = z.infer<typeof completionSchema>;

/** The prompt as sent: text to tokenise, or token ids as they are. */
export type PromptInput = { text: string } | { ids: number[] };

/** A validated chat or completions request: what the engine needs, nothing else. */
export interface EngineRequest {
  kind: EndpointKind;
  model: string;
  prompt: PromptInput;
  /** chat: max_completion_tokens, else max_tokens. */
  maxTokens: number | undefined;
  minTokens: number | undefined;
  ignoreEos: boolean;
  stream: boolean;
  includeUsage: boolean;
  seed: number | undefined;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; error: HttpError };

const fail = (status: number, message: string, type?: string): Validated<never> => ({
  ok: false,
  error: new HttpError(status, message, type),
});

function zodMessage(err: z.ZodError): string {
  const i = err.issues[0];
  if (!i) return "invalid request";
  const path = i.path.join(".");
  return path ? `${path}: ${i.message}` : i.message;
}

/** Chat: message contents joined by newlines (chat templates are not modelled). */
function chatPrompt(body: ChatBody): PromptInput {
  const parts: string[] = [];
  for (const m of body.messages) {
    const c = m.content;
    if (typeof c === "string") parts.push(c);
    else if (Array.isArray(c))
      for (const p of c) if (typeof p.text === "string") parts.push(p.text);
  }
  return { text: parts.join("\n") };
}

function completionPrompt(body: CompletionBody): Validated<PromptInput> {
  const p = body.prompt;
  if (typeof p === "string") return { ok: true, value: { text: p } };
  if (p.length === 0) return fail(400, "prompt must not be empty");
  if (typeof p[0] === "number") return { ok: true, value: { ids: p as number[] } };
  if (p.length !== 1)
    return fail(
      400,
      "batched prompts (a list of several prompts) are not supported by engine-sim; send one prompt per request",
    );
  const one = p[0]!;
  return { ok: true, value: typeof one === "string" ? { text: one } : { ids: one as number[] } };
}

/**
 * Parses and validates one request body for `kind`, served as `model`: JSON, field types, the
 * model name (404 as vLLM answers an unknown model), n = 1, the prompt's shape.
 */
export function parseRequest(
  kind: EndpointKind,
  raw: string,
  model: string,
): Validated<EngineRequest> {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return fail(400, "Invalid JSON body: could not parse the request body as JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    return fail(400, "request body must be a JSON object");
  const parsed = (kind === "chat" ? chatSchema : completionSchema).safeParse(json);
  if (!parsed.success) return fail(400, zodMessage(parsed.error));
  const body = parsed.data as ChatBody & CompletionBody;
  if (body.model !== model) return fail(404, `The model \`${body.model}\` does not exist.`);
  if ((body.n ?? 1) !== 1) return fail(400, "n > 1 is not supported by engine-sim (n must be 1)");
  let prompt: PromptInput;
  if (kind === "chat") prompt = chatPrompt(body);
  else {
    const p = completionPrompt(body);
    if (!p.ok) return p;
    prompt = p.value;
  }
  const stream = body.stream === true;
  return {
    ok: true,
    value: {
      kind,
      model: body.model,
      prompt,
      maxTokens:
        (kind === "chat" ? body.max_completion_tokens : undefined) ?? body.max_tokens ?? undefined,
      minTokens: body.min_tokens ?? undefined,
      ignoreEos: body.ignore_eos ?? false,
      stream,
      includeUsage: stream && body.stream_options?.include_usage === true,
      seed: body.seed ?? undefined,
    },
  };
}

/** The checks that need the prompt's token count: empty prompt, context length, min_tokens. */
export function checkPromptLength(
  req: EngineRequest,
  promptTokens: number,
  maxModelLen: number,
): HttpError | undefined {
  const maxTokens = req.maxTokens;
  if (promptTokens === 0) return new HttpError(400, "the prompt is empty (0 tokens)");
  if (maxTokens !== undefined && promptTokens + maxTokens > maxModelLen)
    return new HttpError(
      400,
      `This model's maximum context length is ${maxModelLen} tokens. However, you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
    );
  if (promptTokens >= maxModelLen)
    return new HttpError(
      400,
      `This model's maximum context length is ${maxModelLen} tokens. However, your prompt has ${promptTokens} tokens, leaving no room for the completion.`,
    );
  if (req.minTokens !== undefined && maxTokens !== undefined && req.minTokens > maxTokens)
    return new HttpError(
      400,
      `min_tokens (${req.minTokens}) must be less than or equal to max_tokens (${maxTokens})`,
    );
  return undefined;
}

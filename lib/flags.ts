/** Command-line flags checked with a zod schema: the one error shape every command uses. */
import type { z } from "zod";
import { UserError } from "./errors.ts";

/** Validates commander's parsed options; the error names the flag (`--max-model-len: ...`). */
export function parseFlags<T extends z.ZodType>(schema: T, raw: unknown): z.output<T> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const flag = issue.path.length
    ? `--${String(issue.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
    : "options";
  throw new UserError(`${flag}: ${issue.message}`);
}

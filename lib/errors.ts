/**
 * Errors a user can act on. The CLI's error handler prints `message` (and `hint`) without a
 * stack trace and exits with `exitCode`: 2 for bad input (config, flags, files), 1 otherwise.
 */
export class UserError extends Error {
  readonly exitCode: number;
  readonly hint: string | undefined;
  constructor(message: string, opts: { exitCode?: number; hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "UserError";
    this.exitCode = opts.exitCode ?? 2;
    this.hint = opts.hint;
  }
}

/** A bad input file: names the file (and line when known). */
export class InputFileError extends UserError {
  constructor(file: string, line: number | undefined, problem: string, hint?: string) {
    super(`${file}${line === undefined ? "" : `:${line}`}: ${problem}`, { exitCode: 2, hint });
    this.name = "InputFileError";
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

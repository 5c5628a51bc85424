/**
 * The one error handler: user errors print their message and hint (no stack) and exit with their
 * code (2 for bad input); a file-system error on a path the user named (a directory where a file
 * was expected, a missing folder, no permission) is bad input too and prints the path and the
 * reason; anything else is a bug and prints the stack with exit 1. The logger redacts secrets.
 */
import { CommanderError } from "commander";
import { UserError } from "../lib/errors.ts";
import { logger as defaultLogger, type Logger } from "../lib/logger.ts";

/** errno codes that describe the input (a path), not a defect of the program. */
const INPUT_ERRNO = new Set([
  "ENOENT",
  "ENOTDIR",
  "EISDIR",
  "EACCES",
  "EPERM",
  "EEXIST",
  "ENAMETOOLONG",
  "ELOOP",
  "EROFS",
  "ENOSPC",
]);

export function handleError(err: unknown, logger: Logger = defaultLogger): number {
  if (err instanceof CommanderError) {
    // commander already printed its message; --help/--version exit 0.
    return err.exitCode === 0 ? 0 : 2;
  }
  if (err instanceof UserError) {
    logger.error(err.message);
    if (err.hint) logger.info(`hint: ${err.hint}`);
    return err.exitCode;
  }
  const sys = err as NodeJS.ErrnoException;
  if (
    err instanceof Error &&
    typeof sys.code === "string" &&
    INPUT_ERRNO.has(sys.code) &&
    sys.path
  ) {
    logger.error(`cannot ${sys.syscall ?? "use"} ${sys.path}: ${describeErrno(sys.code)}`);
    logger.info("hint: check the path and its permissions (INFERBENCH_DEBUG=1 prints the stack)");
    if (process.env.INFERBENCH_DEBUG === "1" && err.stack) logger.debug(err.stack);
    return 2;
  }
  logger.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  return 1;
}

function describeErrno(code: string): string {
  const text: Record<string, string> = {
    ENOENT: "no such file or directory",
    ENOTDIR: "a part of the path is not a directory",
    EISDIR: "it is a directory",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EEXIST: "it already exists",
    ENAMETOOLONG: "the name is too long",
    ELOOP: "too many symbolic links",
    EROFS: "the file system is read-only",
    ENOSPC: "no space left on the device",
  };
  return `${text[code] ?? code} (${code})`;
}

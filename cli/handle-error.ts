/**
 * The one error handler: user errors print their message and hint (no stack) and exit with their
 * code (2 for bad input); anything else is a bug and prints the stack with exit 1.
 */
import { CommanderError } from "commander";
import { UserError } from "../lib/errors.ts";
import { logger } from "../lib/logger.ts";

export function handleError(err: unknown): number {
  if (err instanceof CommanderError) {
    // commander already printed its message; --help/--version exit 0.
    return err.exitCode === 0 ? 0 : 2;
  }
  if (err instanceof UserError) {
    logger.error(err.message);
    if (err.hint) logger.info(`hint: ${err.hint}`);
    return err.exitCode;
  }
  logger.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  return 1;
}

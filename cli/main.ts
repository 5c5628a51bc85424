/** Entry point: build the program, run it, route every failure through the shared handler. */
import { exitWithParent } from "../lib/exit-with-parent.ts";
import { handleError } from "./handle-error.ts";
import { buildProgram } from "./index.ts";

exitWithParent();

// `serve` keeps its servers running after the action returns; every other command is done when
// its action settles, so exit then rather than wait on idle keep-alive sockets or timers.
const longRunning = process.argv[2] === "serve";
try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  process.exitCode = handleError(err);
}
if (!longRunning) process.exit(process.exitCode ?? 0);

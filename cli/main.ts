/** Entry point: build the program, run it, route every failure through the shared handler. */
import { handleError } from "./handle-error.ts";
import { buildProgram } from "./index.ts";

// Servers started by the local launcher exit when their parent is gone (no orphans after a crash).
if (process.env.INFERBENCH_EXIT_WITH_PARENT === "1") {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(1);
  }, 500).unref();
}

// `serve` keeps its servers running after the action returns; every other command is done when
// its action settles, so exit then rather than wait on idle keep-alive sockets or timers.
const longRunning = process.argv[2] === "serve";
try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  process.exitCode = handleError(err);
}
if (!longRunning) process.exit(process.exitCode ?? 0);

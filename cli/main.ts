/** Entry point: build the program, run it, route every failure through the shared handler. */

import { handleError } from "./handle-error.ts";

// Servers started by the local launcher exit when their parent is gone (no orphans after a crash).
if (process.env.INFERBENCH_EXIT_WITH_PARENT === "1") {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(1);
  }, 500).unref();
}
import { buildProgram } from "./index.ts";

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  process.exitCode = handleError(err);
}

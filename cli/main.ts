/** Entry point: build the program, run it, route every failure through the shared handler. */

import { handleError } from "./handle-error.ts";
import { buildProgram } from "./index.ts";

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  process.exitCode = handleError(err);
}

/**
 * Container entry point (services/engine-sim/Dockerfile): engine-sim's command on its own, without
 * the rest of the CLI. Arguments are the `serve engine-sim` flags (`serve engine-sim` in front of
 * them is accepted too: compose/kube pass the CLI's argv); the listen address defaults to 0.0.0.0
 * here (a later --host wins) so the container is reachable.
 */
import { Command } from "commander";
import { errorMessage, UserError } from "../../lib/errors.ts";
import { exitWithParent } from "../../lib/exit-with-parent.ts";
import { configureEngineSimCommand } from "./options.ts";

exitWithParent();
const program = configureEngineSimCommand(
  new Command("inferbench-engine-sim").exitOverride(),
  "inferbench-engine-sim",
);
let args = process.argv.slice(2);
if (args[0] === "serve" && args[1] === "engine-sim") args = args.slice(2);
try {
  await program.parseAsync(["--host", "0.0.0.0", ...args], { from: "user" });
} catch (err) {
  const code = (err as { code?: string }).code;
  if (code === "commander.helpDisplayed" || code === "commander.version") process.exit(0);
  process.stderr.write(`inferbench-engine-sim: ${errorMessage(err)}\n`);
  if (err instanceof UserError && err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  process.exit(err instanceof UserError ? err.exitCode : 1);
}

/**
 * Container entry point (services/router/Dockerfile): the router's command on its own, without
 * the rest of the CLI. Arguments are the `serve router` flags; `serve router` in front of them
 * is accepted too (the CLI's argv).
 */
import { Command } from "commander";
import { errorMessage, UserError } from "../../lib/errors.ts";
import { exitWithParent } from "../../lib/exit-with-parent.ts";
import { configureRouterCommand } from "./options.ts";

exitWithParent();
const program = configureRouterCommand(
  new Command("inferbench-router").exitOverride(),
  "inferbench-router",
);
let args = process.argv.slice(2);
if (args[0] === "serve" && args[1] === "router") args = args.slice(2);
try {
  await program.parseAsync(args, { from: "user" });
} catch (err) {
  const code = (err as { code?: string }).code;
  if (code === "commander.helpDisplayed" || code === "commander.version") process.exit(0);
  process.stderr.write(`inferbench-router: ${errorMessage(err)}\n`);
  if (err instanceof UserError && err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  process.exit(err instanceof UserError ? err.exitCode : 1);
}

/**
 * Container entry point (services/router/Dockerfile): `inferbench serve router` without the rest
 * of the CLI. Arguments are the command's flags.
 */
import { Command } from "commander";
import { registerServeRouter } from "../../cli/commands/serve-router.ts";
import { errorMessage, UserError } from "../../lib/errors.ts";

const program = new Command("inferbench-router").exitOverride();
const serve = program.command("serve");
registerServeRouter(serve);
try {
  await program.parseAsync(["serve", "router", ...process.argv.slice(2)], { from: "user" });
} catch (err) {
  const code = (err as { code?: string }).code;
  if (code === "commander.helpDisplayed" || code === "commander.version") process.exit(0);
  process.stderr.write(`inferbench-router: ${errorMessage(err)}\n`);
  if (err instanceof UserError && err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  process.exit(err instanceof UserError ? err.exitCode : 1);
}

/**
 * Container entry point (services/engine-sim/Dockerfile): `inferbench serve engine-sim` without
 * the rest of the CLI. Arguments are the command's flags; the listen address defaults to 0.0.0.0
 * here (a later --host wins) so the container is reachable.
 */
import { Command } from "commander";
import { registerServeEngineSim } from "../../cli/commands/serve-engine-sim.ts";
import { errorMessage, UserError } from "../../lib/errors.ts";

const program = new Command("inferbench-engine-sim").exitOverride();
const serve = program.command("serve");
registerServeEngineSim(serve);
// compose/kube pass the CLI's argv (`serve engine-sim --port ...`); accept it with or without.
let args = process.argv.slice(2);
if (args[0] === "serve" && args[1] === "engine-sim") args = args.slice(2);
try {
  await program.parseAsync(["serve", "engine-sim", "--host", "0.0.0.0", ...args], {
    from: "user",
  });
} catch (err) {
  const code = (err as { code?: string }).code;
  if (code === "commander.helpDisplayed" || code === "commander.version") process.exit(0);
  process.stderr.write(`inferbench-engine-sim: ${errorMessage(err)}\n`);
  if (err instanceof UserError && err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  process.exit(err instanceof UserError ? err.exitCode : 1);
}

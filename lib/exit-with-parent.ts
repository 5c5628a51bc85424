/**
 * Servers the local launcher starts exit when their parent is gone, so a crashed or killed run
 * leaves no orphans. The launcher sets the variable; every entry point calls this first.
 */
export const EXIT_WITH_PARENT_ENV = "INFERBENCH_EXIT_WITH_PARENT";

export function exitWithParent(env: NodeJS.ProcessEnv = process.env): void {
  if (env[EXIT_WITH_PARENT_ENV] !== "1") return;
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(1);
  }, 500).unref();
}

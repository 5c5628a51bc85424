/**
 * The one run-id format: `20261124-134512-ab12` (UTC stamp + 16 random bits). Sortable, safe in
 * paths, Pulumi stack names and GCP label values; resource names get a letter prefix from
 * infra/naming.ts because GCP names must start with a letter.
 */
export const RUN_ID_PATTERN = /^\d{8}-\d{6}-[0-9a-f]{4}$/;

export function newRunId(now = new Date(), rand: () => number = Math.random): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const stamp = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  return `${stamp}-${Math.floor(rand() * 0xffff)
    .toString(16)
    .padStart(4, "0")}`;
}

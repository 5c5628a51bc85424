/**
 * Checks of the operator CIDRs that the SSH firewall opens (gcp.sshSourceRanges), shared by the
 * preflight of `inferbench run` and the Pulumi program (`pulumi up` by hand): a documentation
 * address (RFC 5737) or the shipped placeholder opens SSH to nobody real, so the run would pay for
 * a VM it can never reach. Pure; no Pulumi import.
 */

/** What the shipped stacks carry until the user sets their own address (matches no client). */
export const SSH_RANGE_PLACEHOLDER = "0.0.0.0/32";

/** RFC 5737 TEST-NET blocks: addresses for examples, never routed on the internet. */
export const DOCUMENTATION_RANGES = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"] as const;

function ipv4(s: string): number | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n;
}

function parseCidr(cidr: string): { base: number; bits: number } | undefined {
  const [addr, len] = cidr.split("/");
  const base = ipv4(addr ?? "");
  const bits = Number(len);
  if (base === undefined || !/^\d{1,2}$/.test(len ?? "") || bits > 32) return undefined;
  return { base, bits };
}

/** Whether two CIDR blocks share any address (exact: values stay below 2^32). */
function overlaps(a: { base: number; bits: number }, b: { base: number; bits: number }): boolean {
  const size = 2 ** (32 - Math.min(a.bits, b.bits));
  return Math.floor(a.base / size) === Math.floor(b.base / size);
}

export const WHERE_TO_SET =
  "set your own public IPv4 address: --set 'gcp.sshSourceRanges=[x.x.x.x/32]' (or edit the stack file)";

/** Problems with the SSH ranges, each naming its index in gcp.sshSourceRanges. */
export function sshRangeProblems(ranges: readonly string[]): { index: number; message: string }[] {
  const out: { index: number; message: string }[] = [];
  ranges.forEach((r, index) => {
    const key = `gcp.sshSourceRanges[${index}]`;
    if (r === SSH_RANGE_PLACEHOLDER) {
      out.push({ index, message: `${key} is the placeholder ${r}, which lets nobody in` });
      return;
    }
    const c = parseCidr(r);
    if (!c) {
      out.push({ index, message: `${key} = ${r} is not an IPv4 CIDR (octets 0-255, prefix 0-32)` });
      return;
    }
    const doc = DOCUMENTATION_RANGES.find((d) => overlaps(c, parseCidr(d)!));
    // Only a block inside a documentation range is refused; a wider one holds real addresses too.
    if (doc && c.bits >= 24)
      out.push({
        index,
        message: `${key} = ${r} is in the documentation range ${doc} (RFC 5737): no real client has that address, so SSH would be closed to you`,
      });
  });
  return out;
}

/**
 * Secret redaction for everything the kit writes (logs, manifests, rendered files, results).
 * Known secret values are registered at start-up (e.g. the HF token from config); token-shaped
 * strings are redacted even when not registered.
 */
const registered = new Set<string>();

/** Registers a secret value so that it never appears in output. Values under 6 chars are ignored. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 6) registered.add(value);
}

const TOKEN_PATTERNS: RegExp[] = [
  /\bhf_[A-Za-z0-9]{20,}\b/g, // Hugging Face tokens
  /\bya29\.[A-Za-z0-9_\-.]{20,}/g, // Google OAuth access tokens
  /\b(sk|pk)-[A-Za-z0-9_-]{20,}\b/g, // API keys
  /(authorization:\s*bearer\s+)[^\s"']+/gi,
];

export const REDACTED = "[REDACTED]";

export function redactSecrets(text: string): string {
  let out = text;
  for (const secret of registered) out = out.split(secret).join(REDACTED);
  for (const re of TOKEN_PATTERNS) {
    out = out.replace(re, (_match, prefix: unknown) =>
      typeof prefix === "string" && /bearer/i.test(prefix) ? `${prefix}${REDACTED}` : REDACTED,
    );
  }
  return out;
}

/** Deep copy of `value` with every key that names a secret replaced by REDACTED. */
export function redactObject<T>(
  value: T,
  secretKeys: RegExp = /(token|secret|password|apikey|api_key|privatekey|private_key)$/i,
): T {
  if (Array.isArray(value)) return value.map((v) => redactObject(v, secretKeys)) as T;
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] =
        secretKeys.test(k) && v !== undefined && v !== null && v !== ""
          ? REDACTED
          : redactObject(v, secretKeys);
    }
    return out as T;
  }
  if (typeof value === "string") return redactSecrets(value) as T;
  return value;
}

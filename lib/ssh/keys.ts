/**
 * Ed25519 keys in OpenSSH formats, generated with node:crypto (no @pulumi/tls here).
 * One encoder serves both the operator's login key (read by ssh2 and `ssh -i`) and the VM's host
 * key (read by sshd). Public keys are `ssh-ed25519 AAAA… comment` lines.
 */
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";

export interface SshKeyPair {
  /** `-----BEGIN OPENSSH PRIVATE KEY-----` (unencrypted openssh-key-v1). */
  privateKey: string;
  /** `ssh-ed25519 <base64> <comment>` */
  publicKey: string;
}

function sshString(buf: Buffer | string): Buffer {
  const b = typeof buf === "string" ? Buffer.from(buf) : buf;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** The wire-format public key blob: string "ssh-ed25519", string pub32. */
export function ed25519Blob(pub: Buffer): Buffer {
  return Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
}

export function generateEd25519(comment = "inferbench"): SshKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const pub = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
  const seed = Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url");
  return encodeEd25519(seed, pub, comment);
}

/** Pure encoder (seed and public key in, OpenSSH texts out); `check` is normally random. */
export function encodeEd25519(
  seed: Buffer,
  pub: Buffer,
  comment: string,
  check: number = randomBytes(4).readUInt32BE(),
): SshKeyPair {
  if (seed.length !== 32 || pub.length !== 32) throw new Error("ed25519 keys are 32 bytes");
  const blob = ed25519Blob(pub);
  let priv = Buffer.concat([
    u32(check),
    u32(check),
    sshString("ssh-ed25519"),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  const pad: number[] = [];
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i);
  priv = Buffer.concat([priv, Buffer.from(pad)]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    u32(1),
    sshString(blob),
    sshString(priv),
  ]).toString("base64");
  const lines = body.match(/.{1,70}/g) ?? [];
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `ssh-ed25519 ${blob.toString("base64")} ${comment}`,
  };
}

/** The key blob of an `ssh-<type> <base64> [comment]` line. */
export function publicKeyBlob(line: string): Buffer {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2 || !/^(ssh-|ecdsa-)/.test(parts[0]!)) {
    throw new Error("not an OpenSSH public key line (expected `ssh-ed25519 AAAA…`)");
  }
  const blob = Buffer.from(parts[1]!, "base64");
  const type = blob.subarray(4, 4 + blob.readUInt32BE(0)).toString();
  if (type !== parts[0]) throw new Error(`public key type mismatch: ${parts[0]} vs ${type}`);
  return blob;
}

/** `SHA256:<base64 without padding>` as `ssh-keygen -lf` prints it. */
export function fingerprint(line: string): string {
  const d = createHash("sha256").update(publicKeyBlob(line)).digest("base64");
  return `SHA256:${d.replace(/=+$/, "")}`;
}

import { hkdfSync } from 'node:crypto'

/**
 * The keys a mesh secret gives a replication link. The TLS pre-shared key
 * and the key id are both derived with HKDF-SHA256 from the secret, salted
 * with the mesh id: the raw secret is never used as a key, and one secret
 * shared by two meshes still gives each its own keys.
 */
export interface LinkKey {
  /** Names the secret without revealing it: the TLS PSK identity, and what `hello` lists. 12 hex digits. */
  readonly id: string
  /** The TLS pre-shared key, 32 bytes. */
  readonly psk: Buffer
  /** The secret itself, for the challenge-response inside the link. */
  readonly secret: string
}

/** The one cipher suite of default links: ECDHE for forward secrecy, keyed by the PSK; AEAD. TLS 1.2 (Node's PSK support). */
export const LINK_CIPHER = 'ECDHE-PSK-CHACHA20-POLY1305'

/** The most secrets a peer holds at once: the current one and up to three previous ones, while they rotate. */
export const MAX_SECRETS = 4

function derive(secret: string, meshId: string, info: string, bytes: number): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, meshId, `meshmirror link ${info}`, bytes))
}

/** The link keys of a mesh's secrets, in the order given (the first is preferred). */
export function linkKeys(meshId: string, secrets: readonly string[]): LinkKey[] {
  return secrets.map((secret) => ({
    id: derive(secret, meshId, 'key id', 6).toString('hex'),
    psk: derive(secret, meshId, 'psk v1', 32),
    secret,
  }))
}

/**
 * The key to use with a peer that holds the keys `theirs` (ids): the first
 * of ours it holds too, or undefined when it holds none of them.
 */
export function commonKey(ours: readonly LinkKey[], theirs: readonly string[]): LinkKey | undefined {
  return ours.find((k) => theirs.includes(k.id))
}

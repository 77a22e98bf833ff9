import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/** A fresh challenge. */
export function newNonce(): string {
  return randomBytes(16).toString('hex')
}

/**
 * Proof that the sender knows the mesh secret, bound to the receiver's
 * challenge, the mesh and the sender's site: replaying it elsewhere fails.
 * The secret itself never crosses the wire.
 */
export function proof(secret: string, meshId: string, challenge: string, site: string): string {
  return createHmac('sha256', secret).update(`meshmirror/1\n${meshId}\n${challenge}\n${site}`).digest('hex')
}

export function verifyProof(given: string, expected: string): boolean {
  const a = Buffer.from(given, 'hex')
  const b = Buffer.from(expected, 'hex')
  return a.length === b.length && timingSafeEqual(a, b)
}

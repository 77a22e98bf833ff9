import type { BuiltinMesh } from '../../../src/index.js'

/**
 * Syncs builtin meshes in one process by pulling exactly what each lacks
 * (version vectors), the way replication does over the wire.
 */
export class MeshLink {
  private readonly cursors = new Map<string, number>()
  private readonly stops: (() => void)[] = []
  private chain: Promise<unknown> = Promise.resolve()
  private failure: unknown
  private roundPending = false

  constructor(private readonly meshes: readonly BuiltinMesh[]) {}

  /** Sends `from`'s changes that `to` has not seen. Returns how many were sent. */
  async pull(from: BuiltinMesh, to: BuiltinMesh, chunk = 1000): Promise<number> {
    const key = `${from.siteId}>${to.siteId}`
    let after = this.cursors.get(key) ?? 0
    let sent = 0
    for (;;) {
      const part = await from.changesFor(await to.versionVector(), after, chunk)
      if (part.changes.length > 0 || part.complete) {
        await to.applyRemote(part.changes, {
          from: from.siteId,
          cursor: part.cursor,
          ...(part.complete && part.versionVector ? { versionVector: part.versionVector } : {}),
        })
      }
      sent += part.changes.length
      after = part.cursor
      if (part.complete) break
    }
    this.cursors.set(key, after)
    return sent
  }

  /** One full round: every mesh pulls from every other. */
  async sync(): Promise<number> {
    let n = 0
    for (const from of this.meshes) for (const to of this.meshes) if (from !== to) n += await this.pull(from, to)
    return n
  }

  /** Syncs after every commit until stopped (a LAN that is always connected). */
  live(): () => void {
    for (const m of this.meshes) {
      this.stops.push(
        m.onCommit(() => {
          if (this.roundPending) return
          this.roundPending = true
          this.chain = this.chain
            .then(() => {
              this.roundPending = false
              return this.sync()
            })
            .catch((e) => {
              this.failure = e
            })
        }),
      )
    }
    return () => this.stop()
  }

  /** Waits for the syncs scheduled so far. Rethrows a sync failure. */
  async settled(): Promise<void> {
    await this.chain
    if (this.failure) throw this.failure
  }

  stop(): void {
    for (const s of this.stops.splice(0)) s()
  }
}

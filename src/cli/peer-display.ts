import type { RunningPeer } from '../config/start-peer.js'
import type { PeerSnapshot } from '../config/status-snapshot.js'
import type { ConflictRecord } from '../mesh/conflict.js'

/** Progress shown only once a step has taken this long. */
const SHOW_AFTER_MS = 400
/** Without a terminal, a status line this often at most (and on every change of phase). */
const PLAIN_EVERY_MS = 10_000

/** One line summing up a snapshot: phase, peers, documents per collection, rates and lag. */
export function statusLine(s: PeerSnapshot): string {
  const live = s.peers.filter((p) => p.state === 'live' || p.state === 'syncing').length
  const docs = Object.entries(s.collections)
    .map(([c, n]) => `${c} ${n}`)
    .join(', ')
  return [
    s.phase,
    `${live} peer${live === 1 ? '' : 's'}`,
    ...(s.hub ? [`hub ${s.hub.state}${s.hub.lag > 0 ? ` lag ${s.hub.lag}` : ''}`] : []),
    docs || 'no collections',
    `in ${s.sync.applyRate}/s`,
    `out ${s.sync.pushRate}/s`,
    `lag ${Math.round(s.sync.lagMs)} ms`,
    ...(s.sync.rejected > 0 ? [`rejected ${s.sync.rejected}`] : []),
    ...(s.sync.parked > 0 ? [`parked ${s.sync.parked}`] : []),
    ...(s.sync.refused > 0 ? [`refused ${s.sync.refused}`] : []),
    ...((s.sync.conflicts ?? 0) > 0 ? [`conflicts ${s.sync.conflicts}`] : []),
    ...(s.sync.errors > 0 ? [`errors ${s.sync.errors}`] : []),
    ...(s.insecure ? ['links NOT ENCRYPTED'] : []),
  ].join(' · ')
}

/** What a conflict is, in a few words: `items/tea created on two devices`. */
export function describeConflict(c: ConflictRecord): string {
  return c.kind === 'create'
    ? `${c.collection}/${c.id} created on two devices that had not seen each other's`
    : `${c.collection}/${c.id} field ${c.field} changed on two devices at once`
}

function bar(done: number, total: number | undefined, width = 20): string {
  if (!total) return `${done}`
  const f = Math.min(1, done / total)
  const n = Math.round(f * width)
  return `${String(Math.round(f * 100)).padStart(3)}% [${'#'.repeat(n)}${'.'.repeat(width - n)}] ${done}/${total}`
}

/**
 * Shows a peer's life for people: in a terminal, a progress bar for a long
 * catch-up or seeding, then one status line rewritten in place; otherwise
 * plain log lines (phase changes, and a status line every 10 s).
 */
export function attachDisplay(peer: RunningPeer, stream: NodeJS.WriteStream): () => void {
  const tty = stream.isTTY === true
  let stepStarted = 0
  let stepKey = ''
  let lastPlain = 0
  let lastPhase = ''
  const rewrite = (text: string) => {
    const width = stream.columns ?? 120
    stream.write(`\r\x1b[2K${text.length > width - 1 ? `${text.slice(0, width - 2)}…` : text}`)
  }
  const offs = [
    peer.on('progress', (p) => {
      const key = `${p.phase}:${p.model ?? ''}`
      if (key !== stepKey) {
        stepKey = key
        stepStarted = Date.now()
      }
      if (Date.now() - stepStarted < SHOW_AFTER_MS) return
      const text = `${p.phase} ${p.model ?? ''} ${bar(p.done, p.total)}`
      if (tty) rewrite(text)
      else if (p.total !== undefined && p.done >= p.total) stream.write(`${text}\n`)
    }),
    peer.on('snapshot', (s) => {
      if (tty) {
        if (s.phase === 'live' || s.phase === 'offline' || s.phase === 'closing') rewrite(statusLine(s))
        return
      }
      const now = Date.now()
      if (s.phase !== lastPhase || now - lastPlain >= PLAIN_EVERY_MS) {
        lastPhase = s.phase
        lastPlain = now
        stream.write(`${new Date(now).toISOString()} ${statusLine(s)}\n`)
      }
    }),
    peer.on('conflict', (c) => {
      const text = `conflict: ${describeConflict(c)}; the losing version is kept (meshmirror conflicts --dir ${peer.meshDir})`
      if (tty) stream.write(`\r\x1b[2K${text}\n`)
      else stream.write(`${new Date().toISOString()} ${text}\n`)
    }),
    peer.on('peer', (p) => {
      if (p.state !== 'live' && p.state !== 'closed') return
      const text = `peer ${p.site ?? '?'} (${p.remote}) ${p.state === 'live' ? 'connected' : 'disconnected'}`
      if (tty) stream.write(`\r\x1b[2K${text}\n`)
      else stream.write(`${new Date().toISOString()} ${text}\n`)
    }),
  ]
  return () => {
    for (const off of offs) off()
    if (tty) stream.write('\n')
  }
}

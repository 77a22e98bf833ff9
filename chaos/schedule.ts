import { mulberry32 } from './random.js'

/**
 * One fault, at `at` ms after the shop opens. Tills are numbered from 0.
 *
 * - `kill`: SIGKILL of a till's peer, restarted `downMs` later. `when`:
 *   `anytime` (whatever it is doing), `startup` (killed again `againMs` after
 *   that restart, during its startup: catch-up, the outbox, seeding),
 *   `shutdown` (SIGTERM first, SIGKILL `againMs` later, during its shutdown).
 * - `freeze`: the whole till (peer and app) stopped with SIGSTOP, resumed with
 *   SIGCONT `forMs` later.
 * - `partition`: the tills of `side` cannot reach the others, both ways.
 * - `one-way`: `to` stops hearing `from`; `from` still hears `to`.
 * - `slow`: the link between `a` and `b` gets latency and a bandwidth limit.
 * - `drop`: the connections between `a` and `b` are closed (they reconnect).
 * - `clock`: the till's clock (peer and app, through libfaketime) set to
 *   `offsetMs` from the real time: a jump back, or a correction.
 * - `disk-full`: the till's mesh directory (on a small tmpfs of its own)
 *   filled to the last byte, freed `forMs` later.
 * - `config`: the till's peer stopped (SIGTERM) and started with a changed
 *   config: `add table` mirrors the `shifts` table from then on, `exclude
 *   note` keeps `customers.note` local, `include note` mirrors it again.
 */
export type Fault =
  | {
      at: number
      kind: 'kill'
      till: number
      downMs: number
      when: 'anytime' | 'startup' | 'shutdown'
      againMs: number
    }
  | { at: number; kind: 'freeze'; till: number; forMs: number }
  | { at: number; kind: 'partition'; side: number[]; forMs: number }
  | { at: number; kind: 'one-way'; from: number; to: number; forMs: number }
  | { at: number; kind: 'slow'; a: number; b: number; latencyMs: number; bytesPerSecond: number; forMs: number }
  | { at: number; kind: 'drop'; a: number; b: number }
  | { at: number; kind: 'clock'; till: number; offsetMs: number }
  | { at: number; kind: 'disk-full'; till: number; forMs: number }
  | { at: number; kind: 'config'; till: number; change: ConfigChange }

export type ConfigChange = 'add table' | 'exclude note' | 'include note'

export interface ScheduleOptions {
  seed: number
  tills: number
  durationMs: number
  /** Mean time between kills (of any till). */
  killEveryMs: number
  partitionEveryMs: number
  freezeEveryMs: number
  /** Mean time between link faults (one-way, slow, drop). */
  linkEveryMs: number
  /** Longest freeze. */
  maxFreezeMs: number
  /** Clock offsets the tills start with (ms from the real time), and the mean time between clock jumps (0: none). */
  clockOffsetsMs: readonly number[]
  clockEveryMs: number
  /** The till whose mesh directory can fill up (none when undefined), and the mean time between fills. */
  diskTill: number | undefined
  diskEveryMs: number
  /** Whether tills are restarted with changed configs. */
  configChanges: boolean
  /** A till whose peer is never killed or restarted, to watch its memory over the whole run. */
  steadyTill: number | undefined
}

/** The clock offsets tills start with: the second one minutes ahead, the third minutes behind (beyond the engine's 60 s drift bound). */
export function initialClockOffsets(tills: number): number[] {
  return Array.from({ length: tills }, (_, i) => (i === 1 ? 7 * 60_000 : i === 2 ? -9 * 60_000 : 0))
}

/** The fault schedule of a seed: the same options give the same faults, in the same order, at the same times. */
export function makeSchedule(o: ScheduleOptions): Fault[] {
  const random = mulberry32(o.seed)
  const between = (lo: number, hi: number) => Math.round(lo + random() * (hi - lo))
  const till = () => Math.floor(random() * o.tills)
  const other = (t: number) => (t + 1 + Math.floor(random() * (o.tills - 1))) % o.tills
  // Exponential gaps: faults arrive at random moments, now and then close together.
  const times = (every: number) => {
    const out: number[] = []
    for (let t = -Math.log(1 - random()) * every; t < o.durationMs; t += -Math.log(1 - random()) * every) {
      out.push(Math.round(t))
    }
    return out
  }
  const faults: Fault[] = []
  // Tills a kill or a restart may hit: all but the steady one.
  const restartable = Array.from({ length: o.tills }, (_, i) => i).filter((i) => i !== o.steadyTill)
  const restartableTill = () => restartable[Math.floor(random() * restartable.length)]!
  for (const at of times(o.killEveryMs)) {
    const r = random()
    const when = r < 0.25 ? 'startup' : r < 0.4 ? 'shutdown' : 'anytime'
    faults.push({
      at,
      kind: 'kill',
      till: restartableTill(),
      downMs: between(0, 1500),
      when,
      againMs: when === 'startup' ? between(50, 1500) : when === 'shutdown' ? between(0, 400) : 0,
    })
  }
  if (o.tills > 1) {
    for (const at of times(o.partitionEveryMs)) {
      const t = till()
      // One till alone, or (with four or more) a minority of tills.
      const side = o.tills >= 4 && random() < 0.5 ? [t, other(t)] : [t]
      faults.push({ at, kind: 'partition', side: [...new Set(side)].sort(), forMs: between(2000, 12_000) })
    }
    for (const at of times(o.linkEveryMs)) {
      const a = till()
      const b = other(a)
      const r = random()
      if (r < 0.35) faults.push({ at, kind: 'one-way', from: a, to: b, forMs: between(2000, 10_000) })
      else if (r < 0.7) {
        faults.push({
          at,
          kind: 'slow',
          a,
          b,
          latencyMs: between(20, 400),
          bytesPerSecond: between(20_000, 500_000),
          forMs: between(2000, 10_000),
        })
      } else faults.push({ at, kind: 'drop', a, b })
    }
  }
  for (const at of times(o.freezeEveryMs)) {
    faults.push({ at, kind: 'freeze', till: till(), forMs: between(1000, o.maxFreezeMs) })
  }
  // Drawn after the faults above, so that a seed gives the same kills, partitions and freezes whichever of these run.
  if (o.clockEveryMs > 0) {
    const offsets = [...o.clockOffsetsMs]
    for (const at of times(o.clockEveryMs)) {
      const t = till()
      // Mostly a jump back of 20 s to 4 min; now and then a correction to the right time.
      offsets[t] = random() < 0.3 ? 0 : offsets[t]! - between(20_000, 240_000)
      faults.push({ at, kind: 'clock', till: t, offsetMs: offsets[t]! })
    }
  }
  if (o.diskTill !== undefined) {
    for (const at of times(o.diskEveryMs)) {
      faults.push({ at, kind: 'disk-full', till: o.diskTill, forMs: between(2000, 15_000) })
    }
  }
  if (o.configChanges && restartable.length > 0) {
    const share = (lo: number, hi: number) => Math.round((lo + random() * (hi - lo)) * o.durationMs)
    // Every till mirrors `shifts` from some moment in the first half of the run; one till keeps
    // `customers.note` local for a while, from the first third to the second.
    for (const t of restartable) {
      faults.push({ at: share(0.05, 0.5), kind: 'config', till: t, change: 'add table' })
    }
    const t = restartableTill()
    faults.push({ at: share(0.1, 0.33), kind: 'config', till: t, change: 'exclude note' })
    faults.push({ at: share(0.45, 0.66), kind: 'config', till: t, change: 'include note' })
  }
  return faults.sort((x, y) => x.at - y.at)
}

/** One line naming a fault, with till names counted from 1. */
export function describeFault(f: Fault): string {
  const name = (t: number) => `till-${t + 1}`
  switch (f.kind) {
    case 'kill':
      return `kill ${name(f.till)}${
        f.when === 'startup'
          ? `, restart in ${f.downMs} ms, kill again ${f.againMs} ms into its startup`
          : f.when === 'shutdown'
            ? ` ${f.againMs} ms into a graceful shutdown, restart in ${f.downMs} ms`
            : `, restart in ${f.downMs} ms`
      }`
    case 'freeze':
      return `freeze ${name(f.till)} (peer and app) for ${f.forMs} ms`
    case 'partition':
      return `partition ${f.side.map(name).join(', ')} from the others for ${f.forMs} ms`
    case 'one-way':
      return `${name(f.to)} stops hearing ${name(f.from)} for ${f.forMs} ms`
    case 'slow':
      return `slow link ${name(f.a)}–${name(f.b)}: +${f.latencyMs} ms, ${Math.round(f.bytesPerSecond / 1000)} kB/s for ${f.forMs} ms`
    case 'drop':
      return `drop the connections ${name(f.a)}–${name(f.b)}`
    case 'clock':
      return `set the clock of ${name(f.till)} to ${f.offsetMs >= 0 ? '+' : '−'}${Math.abs(f.offsetMs / 1000)} s`
    case 'disk-full':
      return `fill the mesh directory of ${name(f.till)} for ${f.forMs} ms`
    case 'config':
      return `restart ${name(f.till)} with its config changed: ${f.change}`
  }
}

import { execFileSync } from 'node:child_process'
import { closeSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type { Network } from './network.js'
import { describeFault, type Fault } from './schedule.js'
import type { Till } from './till.js'

/**
 * Fills the file system of `file` to the last byte: the free space at once,
 * then what the till wrote meanwhile is left over, in small pieces until
 * none fits. Returns the bytes that were free.
 */
function fill(file: string): number {
  const dir = join(file, '..')
  const { bavail, bsize } = statfsSync(dir)
  const free = bavail * bsize
  let size = free
  // The till writes meanwhile: ask for a little less until it fits.
  while (size > 0) {
    try {
      execFileSync('fallocate', ['-l', String(size), file], { stdio: 'ignore' })
      break
    } catch {
      size -= Math.max(bsize, Math.floor(size / 100))
    }
  }
  const fd = openSync(`${file}-top`, 'w')
  const chunk = Buffer.alloc(bsize)
  try {
    for (;;) writeSync(fd, chunk)
  } catch {
    // ENOSPC: full.
  } finally {
    closeSync(fd)
  }
  return free
}

/** Faults applied so far, by kind (a kill by what the peer was doing when it came). */
export type FaultCounts = Record<string, number>

/**
 * Applies a fault schedule to a running shop: kills and restarts peers,
 * freezes tills, and switches the faults of the links between them. Every
 * fault is printed when it is applied; one that cannot apply (a kill of a
 * till that is down or frozen) is printed as skipped.
 */
export class FaultInjector {
  readonly counts: FaultCounts = {}
  private readonly timers = new Set<NodeJS.Timeout>()
  /** Tills whose peer is down, waiting to be restarted. */
  private readonly restarting = new Set<number>()
  private healed = false
  /** Filler files taking a till's disk, to delete at the heal. */
  private readonly fillers = new Set<string>()

  constructor(
    private readonly tills: readonly Till[],
    private readonly network: Network,
    private readonly say: (line: string) => void,
  ) {}

  private count(kind: string): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1
  }

  private later(ms: number, fn: () => void | Promise<void>): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      if (!this.healed) void fn()
    }, ms)
    this.timers.add(timer)
  }

  private restart(till: Till, afterMs: number, then?: () => void): void {
    this.restarting.add(till.index)
    this.later(afterMs, () => {
      this.restarting.delete(till.index)
      till.startPeer()
      then?.()
    })
  }

  async apply(f: Fault): Promise<void> {
    switch (f.kind) {
      case 'kill': {
        const till = this.tills[f.till]!
        if (till.frozen || !till.peer || this.restarting.has(f.till)) {
          this.count('skipped')
          this.say(`skipped: ${describeFault(f)} (${till.frozen ? 'frozen' : 'down'})`)
          return
        }
        this.say(describeFault(f))
        if (f.when === 'shutdown') {
          const how = await till.terminate(f.againMs)
          this.count(how === 'killed' ? 'kill in shutdown' : 'graceful stop')
          if (how !== 'killed' && how !== 0) this.say(`${till.name} stopped with ${how}`)
        } else {
          this.count(till.state === 'live' ? 'kill' : 'kill in startup')
          await till.kill()
        }
        this.restart(till, f.downMs, () => {
          if (f.when !== 'startup') return
          this.later(f.againMs, async () => {
            if (!till.peer || till.frozen) return
            this.count(till.state === 'live' ? 'kill' : 'kill in startup')
            this.say(`kill ${till.name} again (${till.state})`)
            await till.kill()
            this.restart(till, f.downMs)
          })
        })
        return
      }
      case 'freeze': {
        const till = this.tills[f.till]!
        if (till.frozen || !till.peer || this.restarting.has(f.till)) {
          this.count('skipped')
          this.say(`skipped: ${describeFault(f)} (${till.frozen ? 'frozen' : 'down'})`)
          return
        }
        this.say(describeFault(f))
        this.count('freeze')
        till.freeze()
        this.later(f.forMs, () => {
          till.thaw()
          this.say(`thaw ${till.name}`)
        })
        return
      }
      case 'partition': {
        this.say(describeFault(f))
        this.count('partition')
        const undo: (() => void)[] = []
        for (const a of f.side) {
          for (let b = 0; b < this.tills.length; b++) {
            if (f.side.includes(b)) continue
            undo.push(this.network.cut(a, b), this.network.cut(b, a))
          }
        }
        this.later(f.forMs, () => {
          for (const u of undo) u()
        })
        return
      }
      case 'one-way': {
        this.say(describeFault(f))
        this.count('one-way partition')
        // Bytes from `from` to `to`: forward on the link `from` dials, back on the one `to` dials.
        const undo = [this.network.blackhole(f.from, f.to, 'forward'), this.network.blackhole(f.to, f.from, 'back')]
        this.later(f.forMs, () => {
          for (const u of undo) u()
        })
        return
      }
      case 'slow': {
        this.say(describeFault(f))
        this.count('slow link')
        const undo = [
          this.network.throttle(f.a, f.b, f.latencyMs, f.bytesPerSecond),
          this.network.throttle(f.b, f.a, f.latencyMs, f.bytesPerSecond),
        ]
        this.later(f.forMs, () => {
          for (const u of undo) u()
        })
        return
      }
      case 'drop': {
        const n = (await this.network.drop(f.a, f.b)) + (await this.network.drop(f.b, f.a))
        this.say(`${describeFault(f)} (${n} open)`)
        this.count('dropped connections')
        return
      }
      case 'clock': {
        const till = this.tills[f.till]!
        const back = f.offsetMs < till.clockOffsetMs
        this.say(
          `${describeFault(f)} (a jump ${back ? 'back' : 'forward'} of ${Math.abs(f.offsetMs - till.clockOffsetMs) / 1000} s)`,
        )
        this.count(back ? 'clock jump back' : 'clock jump forward')
        till.setClock(f.offsetMs)
        return
      }
      case 'disk-full': {
        const till = this.tills[f.till]!
        if (!till.disk) return
        const filler = join(till.disk, 'filler')
        if (this.fillers.has(filler)) {
          this.count('skipped')
          this.say(`skipped: ${describeFault(f)} (full already)`)
          return
        }
        till.diskFull = true
        const free = fill(filler)
        this.fillers.add(filler)
        this.say(`${describeFault(f)} (${Math.round(free / 2 ** 20)} MB free before)`)
        this.count('disk full')
        this.later(f.forMs, () => {
          rmSync(filler, { force: true })
          rmSync(`${filler}-top`, { force: true })
          this.fillers.delete(filler)
          till.diskFull = false
          till.diskFreedAt = performance.now()
          this.say(`free the mesh directory of ${till.name}`)
        })
        return
      }
      case 'config': {
        const till = this.tills[f.till]!
        const shape = { ...till.shape }
        if (f.change === 'add table') shape.shifts = true
        else shape.excludeNote = f.change === 'exclude note'
        till.reshape(shape)
        if (till.frozen || !till.peer || this.restarting.has(f.till)) {
          this.count('config change at the next start')
          this.say(`${describeFault(f)} (${till.frozen ? 'frozen' : 'down'}: at its next start)`)
          return
        }
        this.say(describeFault(f))
        this.count(`config: ${f.change}`)
        const how = await till.terminate(15_000)
        if (how !== 0) this.say(`${till.name} stopped with ${how}`)
        this.restart(till, 0)
        return
      }
    }
  }

  /** Ends every fault: links healed, tills thawed, and (unless `restart` is false) every peer running. */
  async heal(restart = true): Promise<void> {
    this.healed = true
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    await this.network.heal()
    for (const filler of this.fillers) {
      rmSync(filler, { force: true })
      rmSync(`${filler}-top`, { force: true })
    }
    for (const till of this.tills) {
      if (!till.diskFull) continue
      till.diskFull = false
      till.diskFreedAt = performance.now()
    }
    this.fillers.clear()
    for (const till of this.tills) {
      if (till.frozen) till.thaw()
      if (restart && !till.peer) till.startPeer()
    }
    this.restarting.clear()
  }
}

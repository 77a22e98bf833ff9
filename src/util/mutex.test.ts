import { describe, expect, it } from 'vitest'
import { Mutex } from './mutex.js'

describe('Mutex', () => {
  it('runs sections one at a time in call order, and a failing section does not stop the next', async () => {
    const mutex = new Mutex()
    const log: string[] = []
    const section = (name: string, fail = false) =>
      mutex.run(async () => {
        log.push(`start ${name}`)
        await new Promise<void>((resolve) => setImmediate(resolve))
        log.push(`end ${name}`)
        if (fail) throw new Error(name)
        return name
      })
    const a = section('a')
    const b = section('b', true)
    const c = section('c')
    expect(mutex.pending).toBe(3)
    await expect(a).resolves.toBe('a')
    await expect(b).rejects.toThrow('b')
    await expect(c).resolves.toBe('c')
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c'])
    expect(mutex.pending).toBe(0)
  })
})

import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { freePort, isListening } from './loopback-port.js'

describe('loopback ports', () => {
  it('finds a port a listener can take, and tells whether something listens on it', async () => {
    const port = await freePort()
    expect(port).toBeGreaterThan(0)
    expect(await isListening(port)).toBe(false)
    const server = createServer((s) => s.destroy())
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
    try {
      expect(await isListening(port)).toBe(true)
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
    expect(await isListening(port)).toBe(false)
  })
})

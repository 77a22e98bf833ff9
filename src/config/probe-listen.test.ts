import { describe, expect, it } from 'vitest'
import { probeListen } from './probe-listen.js'

describe('probeListen', () => {
  it('accepts a free loopback port', async () => {
    await expect(probeListen({ host: '127.0.0.1', port: 0 })).resolves.toBeUndefined()
  })

  it('refuses a host the system cannot look up as a config error naming listen.host', async () => {
    for (const host of ['\0', 'a\0b']) {
      await expect(probeListen({ host, port: 0 }, 'c.json')).rejects.toMatchObject({
        code: 'INVALID_CONFIG',
        details: { file: 'c.json', key: 'listen.host' },
      })
    }
  })
})

import { describe, expect, it } from 'vitest'
import { isLoopback, parseDashboardAddress, resolveAccess, tokenMatches } from './access.js'

describe('dashboard access', () => {
  it('reads [host:]port as --dashboard writes it', () => {
    expect(parseDashboardAddress('8080')).toEqual({ port: 8080 })
    expect(parseDashboardAddress('0.0.0.0:0')).toEqual({ host: '0.0.0.0', port: 0 })
    expect(parseDashboardAddress('[::1]:9000')).toEqual({ host: '::1', port: 9000 })
    for (const bad of ['', 'x', '80a', '70000', 'host:', ':80']) {
      expect(() => parseDashboardAddress(bad), bad).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
    }
  })

  it('tells loopback addresses from the others', () => {
    for (const h of ['127.0.0.1', '127.8.9.10', 'localhost', '::1', '[::1]']) expect(isLoopback(h), h).toBe(true)
    for (const h of ['0.0.0.0', '192.168.1.20', '::', 'example.com', '128.0.0.1']) expect(isLoopback(h), h).toBe(false)
  })

  it('needs no token on loopback, generates one elsewhere, and keeps a given one', () => {
    expect(resolveAccess({ port: 0 })).toEqual({ host: '127.0.0.1', port: 0, generated: false })
    const open = resolveAccess({ host: '0.0.0.0', port: 0 })
    expect(open.generated).toBe(true)
    expect(open.token).toMatch(/^[A-Za-z0-9_-]{24}$/)
    expect(resolveAccess({ host: '0.0.0.0', port: 0 }).token).not.toBe(open.token)
    const given = 'a token of twenty chars'
    expect(resolveAccess({ port: 1, token: given })).toEqual({
      host: '127.0.0.1',
      port: 1,
      token: given,
      generated: false,
    })
    expect(() => resolveAccess({ host: '0.0.0.0', port: 0, token: 'short' })).toThrow(/at least 16 characters/)
    expect(() => resolveAccess({ port: 70_000 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
  })

  it('compares tokens whole', () => {
    expect(tokenMatches('0123456789abcdef', '0123456789abcdef')).toBe(true)
    expect(tokenMatches('0123456789abcdef', '0123456789abcde')).toBe(false)
    expect(tokenMatches('0123456789abcdef', '0123456789abcdeF')).toBe(false)
    expect(tokenMatches('0123456789abcdef', undefined)).toBe(false)
  })
})

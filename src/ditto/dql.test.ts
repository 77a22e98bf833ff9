import { describe, expect, it } from 'vitest'
import { compileScope } from '../mesh/filter.js'
import type { Filter } from '../mesh/query.js'
import { selectScope } from './dql.js'

const sel = (filter: Filter) => selectScope(compileScope({ collection: 'orders', filter }))

describe('structured queries compiled to DQL', () => {
  it('binds every value as an argument; quotes names', () => {
    const evil = "x' OR 1=1 --"
    const { text, args } = sel({ status: evil, 'address.city': 'Oslo', total: { $gte: 10 } })
    expect(text).toBe('SELECT * FROM `orders` WHERE (`status` = :p0) AND (`address`.`city` = :p1) AND (`total` >= :p2)')
    expect(args).toEqual({ p0: evil, p1: 'Oslo', p2: 10 })
    expect(text).not.toContain('Oslo')
  })

  it('pushes down only conditions whose DQL result contains every match', () => {
    expect(sel({}).text).toBe('SELECT * FROM `orders`')
    // $ne keeps missing fields, DQL's NOT drops them: decided in memory.
    expect(sel({ s: { $ne: 'x' } }).text).toBe('SELECT * FROM `orders`')
    expect(sel({ s: { $exists: false } }).text).toBe('SELECT * FROM `orders` WHERE `s` IS MISSING')
    expect(sel({ z: null }).text).toBe('SELECT * FROM `orders` WHERE `z` IS NULL')
    expect(sel({ n: { $gt: null } }).text).toBe('SELECT * FROM `orders`')
    // One unpushable branch makes the whole $or unrestricted.
    expect(sel({ $or: [{ a: 1 }, { b: { $ne: 2 } }] }).text).toBe('SELECT * FROM `orders`')
    expect(sel({ $or: [{ a: 1 }, { b: 2 }] }).text).toBe('SELECT * FROM `orders` WHERE (`a` = :p0) OR (`b` = :p1)')
  })

  it('$in: strings as one IN list, mixed values as an OR chain, nothing for an empty list', () => {
    expect(sel({ s: { $in: ['a', 'b'] } })).toEqual({
      text: 'SELECT * FROM `orders` WHERE `s` IN :p0',
      args: { p0: ['a', 'b'] },
    })
    expect(sel({ n: { $in: [1, 'x', null] } }).text).toBe(
      'SELECT * FROM `orders` WHERE (`n` = :p0) OR (`n` = :p1) OR (`n` IS NULL)',
    )
    expect(sel({ n: { $in: [] } }).text).toBe('SELECT * FROM `orders` WHERE false')
  })
})

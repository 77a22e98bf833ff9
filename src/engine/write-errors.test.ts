import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { MeshmirrorError } from '../errors.js'
import { openBuiltinStore } from './open-builtin-store.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('a write the file system refuses', () => {
  it('fails with DIRECTORY_UNUSABLE saying the disk is full, keeps nothing of it, and the store writes again once there is room', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-full-'))
    dirs.push(dir)
    const mesh = await openBuiltinStore({ dir })
    try {
      await mesh.upsert('notes', [{ _id: 'a', text: 'kept' }])
      // SQLite's own limit on the file's size: its writes fail as on a full disk (SQLITE_FULL).
      const writer = (mesh as unknown as { core: { writer: Database.Database } }).core.writer
      const pages = writer.pragma('page_count', { simple: true }) as number
      writer.pragma(`max_page_count = ${pages}`)
      const big = Array.from({ length: 50 }, (_, i) => ({ _id: `b${i}`, text: 'x'.repeat(4000) }))
      const error = await mesh.upsert('notes', big).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(MeshmirrorError)
      expect(error).toMatchObject({ code: 'DIRECTORY_UNUSABLE', details: { dir, sqliteCode: 'SQLITE_FULL' } })
      expect((error as Error).message).toContain('the disk is full')
      expect(await mesh.get('notes', 'b0')).toBeUndefined()
      writer.pragma('max_page_count = 1073741823')
      await mesh.upsert('notes', big)
      expect((await mesh.find({ collection: 'notes' })).length).toBe(51)
    } finally {
      await mesh.close()
    }
  })
})

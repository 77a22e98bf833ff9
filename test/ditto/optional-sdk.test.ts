import { afterEach, describe, expect, it } from 'vitest'
import { removeTempDirs, spawnFixture, tempDir } from './helpers.js'

afterEach(removeTempDirs)

describe('@dittolive/ditto is an optional dependency', () => {
  it('without it the core loads and works, and the Ditto backend says what to install', async () => {
    const child = spawnFixture('without-sdk.ts', [tempDir()])
    const report = await child.waitFor((l) => 'found' in l)
    expect(await child.exited).toEqual({ code: 0, signal: null })
    expect(report).toEqual({
      found: { _id: 'a', v: 1 },
      code: 'DEPENDENCY_MISSING',
      message: 'meshmirror/ditto needs the Ditto SDK: run `npm install @dittolive/ditto@^5`.',
    })
  })
})

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CliProcess, startCli } from '../cli/helpers.js'
import { removeTempDirs, tempDir } from '../ditto/helpers.js'
import { ARTIFACTS, browserTitle, launchChromium, NO_BROWSER } from './browser.js'

// The dashboard of a peer whose mesh is the Ditto SDK (local store; no licence
// token needed): the row and its document are shown, the per-field writers
// are said to be unavailable, since Ditto keeps its merge metadata inside the SDK.

let browser: Browser
let peer: CliProcess | undefined

beforeAll(async () => {
  if (!NO_BROWSER) browser = await launchChromium()
}, 60_000)

afterAll(async () => {
  if (peer && peer.child.exitCode === null) {
    peer.child.kill('SIGTERM')
    await peer.exited
  }
  await browser?.close()
  removeTempDirs()
})

describe.skipIf(NO_BROWSER !== undefined)(browserTitle('the dashboard on a Ditto mesh'), () => {
  it('shows the row and its document, and says which device wrote a field is not available', async () => {
    const dir = tempDir()
    const db = new Database(join(dir, 'pos.db'))
    db.exec(
      "CREATE TABLE products (id TEXT PRIMARY KEY, name TEXT NOT NULL, price REAL); INSERT INTO products VALUES ('tea', 'Tea', 2.5)",
    )
    db.close()
    const config = join(dir, 'meshmirror.config.json')
    writeFileSync(
      config,
      JSON.stringify({
        database: './pos.db',
        mesh: { dir: './pos-ditto', backend: 'ditto', ditto: { diskLogs: false, transports: { lan: false } } },
        meshId: 'shop-1',
        tables: [{ table: 'products' }],
      }),
    )
    peer = startCli(['peer', '--json', '--dashboard', '0', '--config', config])
    const served = await peer.event('dashboard')
    await peer.event('live')

    const res = await fetch(new URL('/api/row?table=products&id=tea', served.url as string))
    const view = (await res.json()) as { row: unknown; doc: unknown; fields: unknown }
    expect(view.row).toEqual({ id: 'tea', name: 'Tea', price: 2.5 })
    expect(view.doc).toMatchObject({ _id: 'tea', name: 'Tea', price: 2.5 })
    expect(view.fields).toBeNull()

    const page = await browser.newPage()
    await page.goto(`${served.url}#browse?table=products&id=tea`)
    await page.locator('#row tr[data-field=name]').waitFor({ timeout: 15_000 })
    expect(await page.locator('#row').textContent()).toContain('which device wrote a field is not available')
    expect(await page.locator('#row tr[data-field=name] td.writer').textContent()).toBe('–')
    await expect
      .poll(() => page.locator('#row .history').textContent(), { timeout: 10_000 })
      .toContain('changed in the mesh (its writer is not known here)')
    await page.screenshot({ path: join(ARTIFACTS, 'browse-ditto.png'), fullPage: true })
    await page.close()
  }, 120_000)
})

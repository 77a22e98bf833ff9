import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { type Browser, chromium } from 'playwright-core'
import { ROOT } from '../cli/helpers.js'

/** Debian's Chromium (`apt-get install chromium`; `.ci/run` installs it when missing). */
export const CHROMIUM = '/usr/bin/chromium'

/**
 * Why the browser tests cannot run here, when they cannot: Chromium is
 * missing on a developer's machine. Under CI (`CI` set) a missing Chromium
 * is a failure, never a skip: `.ci/run` installs it.
 */
export const NO_BROWSER: string | undefined =
  existsSync(CHROMIUM) || process.env.CI
    ? undefined
    : `${CHROMIUM} is missing (apt-get install -y chromium; .ci/run installs it)`

/** A describe title that says why its tests are skipped, when they are. */
export const browserTitle = (title: string) => (NO_BROWSER ? `${title} (skipped: ${NO_BROWSER})` : title)

/** Where the dashboard tests leave their screenshots (ignored by git). */
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'dashboard')

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium), as .ci/run does`)
  }
  mkdirSync(ARTIFACTS, { recursive: true })
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  })
}

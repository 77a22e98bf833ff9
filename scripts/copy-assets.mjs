// Copies what the compiler does not: the dashboard's page, script and styles, served from dist/ as from src/.
import { cpSync } from 'node:fs'

cpSync('src/dashboard/assets', 'dist/dashboard/assets', { recursive: true })

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type LaunchOptions } from 'playwright-core';

/** Where Debian's `chromium` package installs the browser; CHROMIUM_PATH overrides it. */
const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/**
 * The Chromium the browser tests drive: CHROMIUM_PATH, else Debian's `/usr/bin/chromium`
 * (`apt-get install chromium`). Playwright's own browser downloads are never used.
 */
export function findChromium(): string | undefined {
  const configured = process.env.CHROMIUM_PATH;
  if (configured) return existsSync(configured) ? configured : undefined;
  return CANDIDATES.find((candidate) => existsSync(candidate));
}

/** Says loudly that the browser tests cannot run here (with CI=true, npm test counts the skip as a failure). */
export function reportMissingChromium(): void {
  const bar = '!'.repeat(78);
  console.error(
    `\n${bar}\nChromium was not found (CHROMIUM_PATH or /usr/bin/chromium): the browser tests of the resilience console are SKIPPED.\n` +
      `Install it from Debian's packages (\`apt-get install -y --no-install-recommends chromium\`) or set CHROMIUM_PATH.\n${bar}\n`,
  );
}

/**
 * Headless Chromium with a fresh profile of its own (deleted by `close()`), started without
 * anything that talks to the network by itself (background networking, component updates, sync,
 * first-run pages) and without the sandbox, which needs privileges a container lacks.
 */
export async function launchChromium(options: Parameters<typeof chromium.launchPersistentContext>[1] = {}): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const executablePath = findChromium();
  if (executablePath === undefined) throw new Error('Chromium was not found: install Debian\'s chromium package or set CHROMIUM_PATH.');
  const profile = mkdtempSync(join(tmpdir(), 'nest-resilience-chromium-'));
  const launch: LaunchOptions = {
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  };
  const context = await chromium.launchPersistentContext(profile, { ...launch, ...options });
  return {
    context,
    close: async () => {
      try {
        await context.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}

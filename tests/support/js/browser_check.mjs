// Drive headless Chromium (Debian's /usr/bin/chromium) with playwright-core: open the check page
// served on 127.0.0.1 and run the exported model on each backend.
//
//   node browser_check.mjs --url http://127.0.0.1:PORT/index.html --backends wasm,cpu,webgl
//       [--chromium /usr/bin/chromium] [--profile DIR]
//
// Prints one JSON line: {"results": [{backend, snr_db: {output: dB}, timings_ms}], "errors": {...}}.
// Each backend runs in a fresh page, so one backend's state cannot leak into the next.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { HEADLESS_FLAGS } from './chromium.mjs';

const FLAGS = [...HEADLESS_FLAGS, '--disable-quic'];

function parseArgs(argv) {
  const args = { backends: 'wasm,cpu,webgl', chromium: '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!args.url) throw new Error('usage: --url URL [--backends wasm,cpu,webgl] [--chromium PATH]');
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const profile = args.profile || fs.mkdtempSync(path.join(os.tmpdir(), 'tonesweep-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium, headless: true, args: FLAGS,
  });
  const results = [];
  const errors = {};
  try {
    for (const backend of args.backends.split(',')) {
      const page = await context.newPage();
      const consoleErrors = [];
      page.on('pageerror', (err) => consoleErrors.push(String(err)));
      try {
        await page.goto(args.url);
        await page.waitForFunction(() => window.checkReady === true, null, { timeout: 60000 });
        results.push(await page.evaluate((b) => window.runCheck(b), backend));
      } catch (err) {
        errors[backend] = `${String(err).split('\n')[0]} ${consoleErrors.join(' ')}`.trim();
      } finally {
        await page.close();
      }
    }
  } finally {
    await context.close();
    if (!args.profile) fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(JSON.stringify({ results, errors }));
}

main().catch((err) => { console.error(`browser_check: ${err.stack || err}`); process.exit(1); });

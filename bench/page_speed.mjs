// For each model served by `tonesweep serve`: open the page in headless Chromium, load the model on
// a backend, transfer a WAV file `--repeat` times, and record every byte the page downloaded on its
// first load (raw, and gzip -9 as a compressing web server would send it).
//
//   node bench/page_speed.mjs --url URL --wav FILE --models a,b,c [--backend NAME] [--repeat 3] [--synth js|graph]
//        [--live SECONDS [--live-graph 0|1]]
//
// --synth: where the page synthesizes (window.tonesweep.load's option): js (outside the graph, the default)
// or graph (inside the TF.js graph, as before). --live: also play each model live for SECONDS on a fake
// microphone that plays the WAV (window.tonesweep.live); --live-graph 0: live mode slides the bundle's graph
// a block at a time instead of running its live graph (as before bundles had one).
//
// Prints one JSON line: {"MODEL": {"rtf": [..], "render_ms": [..], "seconds", "first_load": {...}, "live"}}.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import { HEADLESS_FLAGS } from '../tests/support/js/chromium.mjs';

const args = { backend: '', repeat: '3', chromium: '/usr/bin/chromium', synth: 'js', live: '0', 'live-graph': '1' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
const FLAGS = [...HEADLESS_FLAGS, '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${args.wav}`,
  '--autoplay-policy=no-user-gesture-required'];

async function measure(context, name, wav) {
  const page = await context.newPage();
  const files = {};
  page.on('response', async (response) => {
    try {
      const body = await response.body();
      files[new URL(response.url()).pathname] = { raw: body.length, gzip: zlib.gzipSync(body, { level: 9 }).length };
    } catch { /* redirects have no body */ }
  });
  await page.goto(args.url);
  await page.waitForFunction(() => window.tonesweep !== undefined);
  await page.evaluate(() => window.tonesweep.ready);
  const loaded = await page.evaluate(([m, b, s, g]) => window.tonesweep.load(m, b || null, { synth: s, liveGraph: g }),
    [name, args.backend, args.synth, args['live-graph'] !== '0']);
  const runs = [];
  for (let i = 0; i < Number(args.repeat); i++) {
    runs.push(await page.evaluate(([bytes]) => window.tonesweep.transferFile(new Uint8Array(bytes).buffer, 'bench.wav'),
      [wav]));
  }
  const live = Number(args.live) > 0 ? await page.evaluate((s) => window.tonesweep.live(s), Number(args.live)) : null;
  await page.close();
  const total = (key, filter = () => true) => Object.entries(files).filter(([p]) => filter(p))
    .reduce((sum, [, f]) => sum + f[key], 0);
  const isModel = (p) => p.startsWith(`/models/${name}/`);
  return {
    backend: runs[0].backend, synth: runs[0].synth, frame_rate: loaded.frameRate, seconds: runs[0].seconds, rtf: runs.map((r) => r.rtf), render_ms: runs.map((r) => r.renderMs),
    feature_ms: runs.map((r) => r.featureMs), live: live && { ...live.live, rtf: live.rtf, seconds: live.seconds },
    first_load: { files, total_raw: total('raw'), total_gzip: total('gzip'),
      model_raw: total('raw', isModel), model_gzip: total('gzip', isModel) },
  };
}

async function main() {
  const wav = [...fs.readFileSync(args.wav)];
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tonesweep-bench-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: args.chromium, headless: true, args: FLAGS });
  await context.grantPermissions(['microphone'], { origin: new URL(args.url).origin });
  const out = {};
  try {
    for (const name of args.models.split(',')) out[name] = await measure(context, name, wav);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(JSON.stringify(out));
}

main().catch((err) => { console.error(`page_speed: ${err.stack || err}`); process.exit(1); });

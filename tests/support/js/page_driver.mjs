// Drive the tone-transfer page in headless Chromium (Debian's chromium via playwright-core), the way
// a person would, and print one JSON line with what happened in each scenario.
//
//   node page_driver.mjs --url URL --wav VOICE.wav --silent SILENT.wav --text NOTES.txt
//        --model NAME --broken NAME --out DIR [--other NAME] [--seconds 6] [--bundle-url URL] [--chromium PATH]
//
// Scenarios: upload (file input, download of the result, screenshot), switch (one take heard as the
// --other instrument too, progress, cancel, the controls while loading), phone (390 px wide, octave,
// level, A/B; screenshot phone.png), mic (a fake microphone that plays VOICE.wav), live (live mode on that
// microphone; screenshot live.png), denied (microphone permission refused), not-audio, silence, broken model,
// no-webassembly, no AudioWorklet (live mode), a live graph that does not load, a model too slow to play live,
// and bundle (the page inside a bundle folder served by a plain static server).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { HEADLESS_FLAGS } from './chromium.mjs';

function parseArgs(argv) {
  const args = { seconds: '6', chromium: '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  return args;
}

const args = parseArgs(process.argv.slice(2));
const FLAGS = [...HEADLESS_FLAGS, '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${args.wav}`, '--autoplay-policy=no-user-gesture-required'];
const origin = new URL(args.url).origin;

async function openPage(context, url = args.url, init = null) {
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(String(err).split('\n')[0]));
  if (init) await page.addInitScript(init);
  await page.goto(url);
  await page.waitForFunction(() => window.tonesweep !== undefined, null, { timeout: 60000 });
  await page.evaluate(() => window.tonesweep.ready);
  return { page, pageErrors };
}

/** Run `action` in the page; return its value, or {error: the page's own error line}. */
async function attempt(page, action, arg) {
  try {
    return { value: await page.evaluate(action, arg) };
  } catch {
    return { error: await page.evaluate(() => window.tonesweep.error()) };
  }
}

async function uploadScenario(context) {
  const { page, pageErrors } = await openPage(context);
  const models = await page.evaluate(() => window.tonesweep.models().map((m) => m.name));
  await page.selectOption('#instrument', args.model); // choosing an instrument loads it: no Load button
  await page.waitForFunction(() => !document.getElementById('file').disabled || window.tonesweep.error(), null,
    { timeout: 120000 });
  await page.setInputFiles('#file', args.wav);
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('done')
    || window.tonesweep.error(), null, { timeout: 300000 });
  const error = await page.evaluate(() => window.tonesweep.error());
  const last = await page.evaluate(() => window.tonesweep.last());
  let downloaded = null;
  if (!error) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    downloaded = path.join(args.out, 'upload.wav');
    await download.saveAs(downloaded);
  }
  await page.screenshot({ path: path.join(args.out, 'page.png'), fullPage: true });
  await page.close();
  return { models, error, last, downloaded, pageErrors };
}

/** One take heard as two instruments: progress while the worker renders, the main thread never stalls,
 * switching clears the result and plays the take again, the same file chosen again renders again,
 * Cancel stops a render, and Record stays off while an instrument loads. */
async function switchScenario(context) {
  const { page, pageErrors } = await openPage(context);
  await page.evaluate(() => {
    window.ticks = [];
    setInterval(() => window.ticks.push([performance.now(), document.getElementById('status').textContent]), 20);
  });
  await page.setInputFiles('#file', args.wav);
  await page.waitForFunction(() => /^rendering .*: \d+ %$/.test(document.getElementById('status').textContent)
    && !document.getElementById('progress').hidden, null, { timeout: 120000 });
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('done')
    || window.tonesweep.error(), null, { timeout: 300000 });
  const first = await page.evaluate(() => window.tonesweep.last()?.instrument);
  const stalls = await page.evaluate(() => {
    const rendering = window.ticks.filter(([, s]) => s.startsWith('rendering'));
    let worst = 0;
    for (let i = 1; i < rendering.length; i++) worst = Math.max(worst, rendering[i][0] - rendering[i - 1][0]);
    return { worst, ticks: rendering.length };
  });
  await page.selectOption('#instrument', args.other);
  const whileLoading = await page.evaluate(() => ({
    cleared: document.getElementById('download').hidden && !document.getElementById('stats').textContent,
    recordDisabled: document.getElementById('record').disabled,
    recordText: document.getElementById('record').textContent,
    fileDisabled: document.getElementById('file').disabled,
  }));
  await page.waitForFunction((other) => window.tonesweep.last()?.instrument === other || window.tonesweep.error(),
    args.other, { timeout: 300000 });
  const second = await page.evaluate(() => window.tonesweep.last()?.instrument);
  await page.setInputFiles('#file', args.wav); // the same file again
  await page.waitForFunction(() => Number(document.getElementById('progress').value) >= 1, null, { timeout: 120000 });
  await page.click('#cancel');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'cancelled'
    || document.getElementById('status').textContent.startsWith('done'), null, { timeout: 120000 });
  const afterCancel = await page.evaluate(() => ({ status: document.getElementById('status').textContent,
    last: window.tonesweep.last()?.instrument ?? null, progressHidden: document.getElementById('progress').hidden,
    error: window.tonesweep.error() }));
  await page.close();
  return { first, second, stalls, whileLoading, afterCancel, pageErrors };
}

/** What a singer on a phone sees and uses: a 390-px-wide screen, the octave control, the instrument's
 * level, A/B between the voice and the rendering. */
async function phoneScenario(context) {
  const { page, pageErrors } = await openPage(context);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.setInputFiles('#file', args.wav);
  const done = () => page.waitForFunction(() => document.getElementById('status').textContent.startsWith('done')
    || window.tonesweep.error(), null, { timeout: 300000 });
  await done();
  const auto = await page.evaluate(() => window.tonesweep.last());
  await page.selectOption('#octave', String(auto.octaves + 1));
  await page.waitForFunction((o) => window.tonesweep.last()?.octaves === o || window.tonesweep.error(), auto.octaves + 1,
    { timeout: 300000 });
  await done();
  const shifted = await page.evaluate(() => window.tonesweep.last());
  await page.$eval('#gain', (el) => { el.value = '-6'; el.dispatchEvent(new Event('input')); });
  const quieter = await page.evaluate(() => window.tonesweep.last().outputGainDb);
  await page.click('label:has(#ab-voice)');
  const voicePlaying = await page.evaluate(() => document.getElementById('player').src);
  await page.click('label:has(#ab-instrument)');
  const instrumentPlaying = await page.evaluate(() => document.getElementById('player').src);
  const layout = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth,
    recordWidth: document.getElementById('record').getBoundingClientRect().width }));
  await page.screenshot({ path: path.join(args.out, 'phone.png'), fullPage: true });
  await page.close();
  return { auto: { octaves: auto.octaves, outputGainDb: auto.outputGainDb, f0Hz: auto.f0Hz.slice(0, 400) },
    shifted: { octaves: shifted.octaves, outputGainDb: shifted.outputGainDb, audio: shifted.audio.slice(0, 16000 * 6) },
    quieter, voicePlaying, instrumentPlaying, layout, pageErrors };
}

/** The fake microphone for --seconds through `action` (record: a take rendered after it ends; live: the
 * instrument played while the voice comes in, kept as the take), then what the page kept. */
async function micScenario(context, action, screenshot = null) {
  await context.grantPermissions(['microphone'], { origin });
  const { page, pageErrors } = await openPage(context);
  await page.evaluate((name) => window.tonesweep.load(name), args.model);
  const result = await attempt(page, action, Number(args.seconds));
  const last = result.error ? null : await page.evaluate(() => window.tonesweep.last());
  if (screenshot) await page.screenshot({ path: path.join(args.out, screenshot), fullPage: true });
  await page.close();
  return { ...result, last, pageErrors };
}

async function errorScenario(context, setup, action, arg, init = null) {
  const { page } = await openPage(context, args.url, init);
  const startError = await page.evaluate(() => window.tonesweep.error());
  if (setup) await page.evaluate(setup, arg);
  const result = await attempt(page, action, arg);
  await page.close();
  return { startError, ...result };
}

/** Live mode that cannot start, said in one line: the bundle's live graph does not load (a folder copied without
 * tfjs/live/: its requests answered 404), or `liveGraph` false makes the test's GRU slide its second-long graph,
 * too slow to play live (a bundle exported before live graphs). */
async function liveErrorScenario(context, { missingLiveGraph = false, liveGraph = true }) {
  const { page } = await openPage(context);
  const notFound = (route) => route.fulfill({ status: 404, body: 'not found' });
  if (missingLiveGraph) await page.route('**/tfjs/live/model.json', notFound);
  const result = await attempt(page, async ([m, g]) => {
    await window.tonesweep.load(m, null, { liveGraph: g });
    return window.tonesweep.live(2);
  }, [args.model, liveGraph]);
  await page.close();
  return result;
}

async function main() {
  fs.mkdirSync(args.out, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tonesweep-page-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium, headless: true, args: FLAGS, acceptDownloads: true,
  });
  const out = {};
  try {
    out.upload = await uploadScenario(context);
    out.mic = await micScenario(context, (s) => window.tonesweep.record(s));
    out.live = await micScenario(context, (s) => window.tonesweep.live(s), 'live.png');
    if (args.other) out.switch = await switchScenario(context);
    out.phone = await phoneScenario(context);
    out.noLiveGraph = await liveErrorScenario(context, { missingLiveGraph: true }); // (the microphone still allowed)
    out.tooSlowLive = await liveErrorScenario(context, { liveGraph: false });
    await context.clearPermissions();
    out.denied = await errorScenario(context, (m) => window.tonesweep.load(m), (s) => window.tonesweep.record(s), args.model);
    const file = (p) => [...fs.readFileSync(p)];
    out.notAudio = await errorScenario(context, null, async ([m, bytes]) => {
      await window.tonesweep.load(m);
      return window.tonesweep.transferFile(new Uint8Array(bytes).buffer, 'notes.txt');
    }, [args.model, file(args.text)]);
    out.silence = await errorScenario(context, null, async ([m, bytes]) => {
      await window.tonesweep.load(m);
      return window.tonesweep.transferFile(new Uint8Array(bytes).buffer, 'silence.wav');
    }, [args.model, file(args.silent)]);
    out.broken = await errorScenario(context, null, (m) => window.tonesweep.load(m), args.broken);
    out.noWasm = await errorScenario(context, null, (m) => window.tonesweep.load(m, 'wasm'), args.model,
      () => { delete window.WebAssembly; });
    out.noWorklet = await errorScenario(context, null, async ([m]) => {
      await window.tonesweep.load(m);
      return window.tonesweep.live(2);
    }, [args.model], () => { delete window.AudioWorkletNode; });
    if (args['bundle-url']) {
      const { page } = await openPage(context, args['bundle-url']);
      const models = await page.evaluate(() => window.tonesweep.models().map((m) => m.name));
      const loaded = await attempt(page, (m) => window.tonesweep.load(m), models[0]);
      out.bundle = { models, ...loaded };
      await page.close();
    }
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(JSON.stringify(out));
}

main().catch((err) => { console.error(`page_driver: ${err.stack || err}`); process.exit(1); });

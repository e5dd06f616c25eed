// The tone-transfer page: pick an exported instrument, sing (microphone) or pick a file, hear it
// played by the model. Same steps as `tonesweep transfer`: features (features.mjs), fit to the
// instrument's register and level, render chunk by chunk carrying phase and state (runner.mjs, run
// by render-worker.mjs off the main thread, with progress and cancel). Live mode (live-session.mjs)
// plays the microphone as the instrument while the singer sings. The last take is kept, so
// choosing another instrument plays it again as that one. Actions run one after another.
// window.tonesweep exposes the same actions to scripts (the end-to-end test drives them).

import { decode, inputMeter, openMicrophone } from './audio-in.mjs';
import { drawPitch, drawWave } from './draw.mjs';
import { features, fitToInstrument, levelGainDb, peakDb, SAMPLE_RATE, SILENCE_DB } from './features.mjs';
import { startLive } from './live-session.mjs';
import { encodeWav } from './wav.mjs';
import { RenderWorker } from './worker-client.mjs';

const $ = (id) => document.getElementById(id);
const state = { models: [], entry: null, card: null, backend: null, recorder: null, live: null, take: null, last: null,
  busy: false, queue: Promise.resolve(), rendering: null, synthPath: 'js' };

function setStatus(text) { $('status').textContent = text; }

function showError(err) {
  const message = err instanceof Error ? err.message : String(err);
  $('error').textContent = message;
  $('error').hidden = false;
  setStatus('');
  return message;
}

function clearError() { $('error').hidden = true; $('error').textContent = ''; }

// ---------------------------------------------------------------------------- models

/** `tonesweep serve` lists bundles in models.json; a bundle folder hosted as it is has its card at ./ */
async function listModels() {
  const listed = await fetch('models.json').catch(() => null);
  if (listed && listed.ok) return (await listed.json()).models;
  const card = await fetch('model-card.json').catch(() => null);
  if (!card || !card.ok) {
    throw new Error('no exported model found: serve bundles with `tonesweep serve --models DIR`, '
      + 'or host an export bundle folder as it is');
  }
  const c = await card.json();
  return [{ name: c.instrument, path: './', precision: c.precision }];
}

// ---------------------------------------------------------------------------- the render worker

const worker = new RenderWorker({
  onLiveError: (message) => swallow(guarded(async () => { await stopLive(); throw new Error(message); })),
});
const ask = (message, progress = null, transfer = []) => worker.ask(message, progress, transfer);

/** backend: null for the page's runtime's own (what a user gets), or one named by a script. */
async function loadModel(name, backend) {
  if (typeof WebAssembly !== 'object') throw new Error(NO_WASM);
  const entry = state.models.find((m) => m.name === name);
  if (!entry) throw new Error(`no model named ${name}`);
  const url = new URL(entry.path, document.baseURI).href;
  let card;
  let loaded;
  try {
    const response = await fetch(new URL('model-card.json', url));
    if (!response.ok) throw new Error(`model-card.json: HTTP ${response.status}`);
    card = await response.json();
    loaded = await ask({ type: 'load', url, backend }, (done, total) => {
      showProgress(done, total, false);
      setStatus(`loading ${name}: ${Math.round((100 * done) / total)} %`);
    }).answer;
  } catch (err) {
    if (err.stage === 'backend') throw err;
    throw new Error(`the ${name} model failed to load (${err.message}): re-export it with \`tonesweep export\``);
  }
  Object.assign(state, { entry, card, backend: loaded.backend });
  return { name, backend: loaded.backend, precision: card.precision, frameRate: card.frame_rate,
    decoder: card.decoder, feature: card.feature };
}

// ---------------------------------------------------------------------------- recording

async function startRecording() {
  if (!state.card) throw new Error('load a model first');
  const stream = await openMicrophone();
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.ondataavailable = (event) => chunks.push(event.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start();
  const meter = inputMeter(stream, (db) => { $('meter').value = Math.max(-60, db); });
  state.recorder = { recorder, stream, chunks, stopped, meter: () => { meter(); $('meter').value = -60; } };
  setRecording(true);
}

function setRecording(on) {
  $('record').textContent = on ? 'Stop' : 'Record';
  $('record').classList.toggle('on', on);
  if (on) setStatus('recording: sing, then press Stop');
}

async function stopRecording() {
  const rec = state.recorder;
  if (!rec) throw new Error('not recording');
  state.recorder = null;
  rec.recorder.stop();
  await rec.stopped;
  rec.stream.getTracks().forEach((track) => track.stop());
  rec.meter();
  setRecording(false);
  const blob = new Blob(rec.chunks, { type: rec.recorder.mimeType });
  return transfer(await decode(await blob.arrayBuffer(), 'the recording'), 'the recording');
}

async function record(seconds) {
  await startRecording();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  return stopRecording();
}

// ---------------------------------------------------------------------------- live

async function startLiveMode() {
  if (!state.card) throw new Error('load a model first');
  if (typeof AudioWorkletNode !== 'function') { // (Safari before 14.1, or a page not on https or localhost)
    throw new Error('this browser has no AudioWorklet, which live mode needs (https or localhost, a current browser): '
      + 'record a take or pick a file instead');
  }
  const stream = await openMicrophone();
  let session;
  try {
    const card = state.liveGraph === false ? { ...state.card, live: undefined } : state.card;
    session = await startLive({ stream, card, ask, octaves: $('octave').value, gainDb: Number($('gain').value),
      onStats: (stats) => {
        $('meter').value = Math.max(-60, stats.level);
        setStatus(`live: ${state.card.instrument} ${Math.round(session?.delayMs ?? 0)} ms after your voice`
          + `${stats.late ? `; ${stats.late} block(s) late` : ''}. Press Stop live to keep the take`);
      } });
  } catch (err) {
    stream.getTracks().forEach((track) => track.stop());
    throw err;
  }
  state.live = { session, stream };
  setLive(true);
  setStatus(`live: sing; ${state.card.instrument} plays ${Math.round(session.delayMs)} ms after your voice`);
  return { block: session.block, delayMs: session.delayMs, deviceMs: session.deviceMs };
}

/** Stop live mode; what was sung and played becomes the take and the result, like a recording. */
async function stopLive() {
  const live = state.live;
  if (!live) return null;
  state.live = null;
  let take;
  try {
    take = await live.session.stop();
  } finally {
    live.stream.getTracks().forEach((track) => track.stop());
    $('meter').value = -60;
    setLive(false);
  }
  const seconds = take.audio.length / SAMPLE_RATE;
  const busyMs = take.featureMs + take.blockMs.reduce((sum, ms) => sum + ms, 0);
  state.take = { audio: take.voice, label: 'the live take' };
  state.last = { label: 'live take', rendered: take.audio, voice: take.voice,
    input: { f0Hz: take.f0Hz, voiced: take.voiced, featureDb: take.featureDb },
    fitted: { f0Hz: take.fittedF0Hz, octaves: take.octaves, levelShiftDb: null },
    seconds, renderMs: busyMs, featureMs: take.featureMs, rtf: (seconds * 1000) / busyMs, backend: take.backend,
    synth: 'js', instrument: state.card.instrument, levelDb: levelGainDb(take.audio), peakDb: peakDb(take.audio),
    live: { block: live.session.block, delayMs: live.session.delayMs, deviceMs: live.session.deviceMs,
      bufferMs: live.session.bufferMs, late: take.late,
      blocks: take.blocks, minSlackMs: take.minSlackMs, lateAtS: take.lateAtS, blockMs: take.blockMs, gainDb: take.gainDb } };
  applyGain(state.last);
  show(state.last);
  return summary(state.last);
}

function setLive(on) {
  $('live').textContent = on ? 'Stop live' : 'Live';
  $('live').classList.toggle('on', on);
  setBusy(state.busy);
}

async function playLive(seconds) {
  await startLiveMode();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  return stopLive();
}

async function transferFile(arrayBuffer, name) {
  if (!state.card) throw new Error('load a model first');
  return transfer(await decode(arrayBuffer, name), name);
}

// ---------------------------------------------------------------------------- the transfer

async function transfer(audio, label) {
  const { card } = state;
  const peak = peakDb(audio);
  if (!audio.length || !(peak >= SILENCE_DB)) {
    throw new Error(`${label}: silent (peak ${Number.isFinite(peak) ? peak.toFixed(0) : '-inf'} dBFS): sing closer to the microphone or pick a louder file`);
  }
  setStatus('computing pitch and loudness');
  const t0 = performance.now();
  const feats = features(audio, card);
  const featureMs = performance.now() - t0;
  if (Math.max(...feats.featureDb) < SILENCE_DB) throw new Error(`${label}: silent: sing closer to the microphone or pick a louder file`);
  state.take = { audio, label }; // heard again as the next instrument chosen
  const fit = fitToInstrument(feats.f0Hz, feats.featureDb, feats.voiced, card, { octaves: $('octave').value });
  const hop = card.layout.hop;
  const noise = new Float32Array(feats.f0Hz.length * hop).map(() => 2 * Math.random() - 1);
  const total = (audio.length / SAMPLE_RATE).toFixed(1);
  setStatus(`rendering ${total} s as ${card.instrument}`);
  showProgress(0, 1);
  const synth = state.synthPath === 'graph' ? undefined : card.synth; // bundles before the control outputs: graph
  const request = ask({ type: 'render', layout: card.layout, synth, f0Hz: fit.f0Hz, featureDb: fit.featureDb, noise },
    (done, calls) => {
      showProgress(done, calls);
      setStatus(`rendering ${total} s as ${card.instrument}: ${Math.round((100 * done) / calls)} %`);
    });
  state.rendering = request.id;
  let rendered;
  try {
    rendered = await request.answer;
  } finally {
    state.rendering = null;
    showProgress(null);
  }
  const out = rendered.audio;
  const seconds = out.length / SAMPLE_RATE;
  if (!out.every(Number.isFinite)) throw new Error(`the ${card.instrument} model produced invalid samples on the ${rendered.backend} backend: re-export it with \`tonesweep export\``);
  state.last = { label, rendered: out, voice: audio, input: feats, fitted: fit, seconds, renderMs: rendered.renderMs,
    featureMs, rtf: (seconds * 1000) / rendered.renderMs, backend: rendered.backend, synth: rendered.synth,
    instrument: card.instrument,
    levelDb: levelGainDb(out), peakDb: peakDb(out) };
  applyGain(state.last);
  show(state.last);
  return summary(state.last);
}

function summary(last) {
  return { instrument: last.instrument, backend: last.backend, synth: last.synth, seconds: last.seconds, renderMs: last.renderMs,
    featureMs: last.featureMs, rtf: last.rtf, octaves: last.fitted.octaves, levelShiftDb: last.fitted.levelShiftDb,
    outputGainDb: last.outputGainDb, ...(last.live ? { live: last.live } : {}) };
}

/** What is heard and downloaded: the model's output brought to one level for every instrument
 * (levelGainDb), then the listener's own level (the slider). */
function applyGain(last) {
  const gainDb = Math.min(last.levelDb + Number($('gain').value), -1 - last.peakDb); // the slider never clips
  const gain = 10 ** (gainDb / 20);
  last.outputGainDb = Math.round(gainDb * 100) / 100;
  last.audio = last.rendered.map((x) => x * gain);
}

// ---------------------------------------------------------------------------- drawing and output

/** A/B: the player plays the voice or the instrument, from the same moment, still playing if it was. */
function playThrough() {
  const last = state.last;
  if (!last?.url) return;
  const player = $('player');
  const wanted = $('ab-voice').checked ? last.voiceUrl : last.url;
  if (player.src === wanted) return;
  const { currentTime, paused } = player;
  player.src = wanted;
  player.currentTime = currentTime;
  if (!paused) player.play().catch(() => {});
}

function showProgress(done, total, cancellable = true) {
  const bar = $('progress');
  bar.hidden = done === null;
  $('cancel').hidden = done === null || !cancellable;
  if (done !== null) { bar.max = total; bar.value = done; }
}

function clearResult() {
  $('player').removeAttribute('src');
  $('download').hidden = true;
  $('stats').textContent = '';
  for (const id of ['pitch', 'wave']) $(id).getContext('2d').clearRect(0, 0, $(id).width, $(id).height);
  state.last = null;
}

function show(last) {
  for (const old of [last.url, last.voiceUrl]) if (old) URL.revokeObjectURL(old);
  last.url = URL.createObjectURL(new Blob([encodeWav(last.audio, SAMPLE_RATE)], { type: 'audio/wav' }));
  last.voiceUrl = URL.createObjectURL(new Blob([encodeWav(last.voice, SAMPLE_RATE)], { type: 'audio/wav' }));
  playThrough();
  const url = last.url;
  $('download').href = url;
  $('download').download = `${last.label.replace(/\.[^.]*$/, '').replace(/[^\w.-]+/g, '_')}-as-${last.instrument}.wav`;
  $('download').hidden = false;
  drawPitch($('pitch'), last.input, last.fitted);
  drawWave($('wave'), last.audio);
  const output = `output ${last.outputGainDb >= 0 ? '+' : ''}${last.outputGainDb} dB`;
  $('stats').textContent = last.live
    ? `${last.seconds.toFixed(1)} s played live on ${last.backend}, ${Math.round(last.live.delayMs)} ms after the voice `
      + `(+${Math.round(last.live.deviceMs)} ms in the browser's audio), ${last.live.late} of ${last.live.blocks} blocks late, `
      + `rendering ${last.rtf.toFixed(1)}x faster than real time; shifted ${last.fitted.octaves} octave(s), ${output}`
    : `${last.seconds.toFixed(1)} s rendered in ${(last.renderMs / 1000).toFixed(2)} s on ${last.backend} `
      + `(${last.rtf.toFixed(1)}x real time); shifted ${last.fitted.octaves} octave(s), input level ${last.fitted.levelShiftDb} dB, `
      + output;
  setStatus('done: press play, or download the WAV');
}

// ---------------------------------------------------------------------------- wiring

/** Run actions one after another (a click during a load waits for it); errors are shown in the page. */
function guarded(action) {
  const run = state.queue.then(async () => {
    setBusy(true);
    clearError();
    try {
      return await action();
    } catch (err) {
      if (err.cancelled) { setStatus('cancelled'); return undefined; }
      showError(err);
      throw err;
    } finally {
      setBusy(false);
    }
  });
  state.queue = run.catch(() => {});
  return run;
}

/** While an action runs, only Stop (a recording), Stop live and Cancel (a render) make sense. */
function setBusy(busy) {
  state.busy = busy;
  const ready = Boolean(state.card) && !busy && !state.live && !state.recorder;
  $('record').disabled = !(ready || state.recorder);
  $('live').disabled = !(ready || state.live);
  $('file').disabled = !ready;
}

function cancelRender() {
  if (state.rendering !== null) worker.post({ type: 'cancel', id: state.rendering });
}

async function loadAndShow(name, backend) {
  const info = await loadModel(name, backend).finally(() => showProgress(null)); // the loading bar goes with the load
  $('instrument').value = name;
  $('model-info').textContent = `${info.name}: ${info.decoder}, ${info.feature}, ${info.frameRate} Hz frames, `
    + `${info.precision} weights, on ${info.backend}`;
  setStatus('ready: record or pick a file');
  return info;
}

/** Another instrument: stop what renders, load it, and play the last take as it. */
function onChoose() {
  cancelRender();
  clearResult();
  setBusy(true); // at once: Record and the file stay off until the instrument is loaded
  const name = $('instrument').value;
  const backend = null; // the runtime's own
  setStatus(`loading ${name}`);
  return guarded(async () => {
    await stopLive();
    const info = await loadAndShow(name, backend);
    if (state.take) await transfer(state.take.audio, state.take.label);
    return info;
  });
}

function onRecord() {
  return state.recorder ? guarded(stopRecording) : guarded(startRecording);
}

function onLive() {
  return state.live ? guarded(stopLive) : guarded(startLiveMode);
}

function onFile() {
  const file = $('file').files[0];
  $('file').value = ''; // the same file chosen again is a new change
  if (!file) return Promise.resolve();
  clearResult();
  return guarded(async () => transferFile(await file.arrayBuffer(), file.name));
}

const swallow = (promise) => promise.catch(() => {}); // shown in the page by guarded()

// The page's TF.js runtime runs on wasm (trainers/export/js/runtime.json): without WebAssembly nothing can load.
const NO_WASM = 'this browser has no WebAssembly, which the page needs to run the instrument: '
  + 'open it in a current Chrome, Edge, Firefox or Safari';

async function start() {
  try {
    state.models = await listModels();
  } catch (err) {
    showError(err);
    return;
  }
  if (typeof WebAssembly !== 'object') { // said at once; nothing can load
    showError(NO_WASM);
    return;
  }
  $('instrument').replaceChildren(...state.models.map((m) => new Option(`${m.name} (${m.precision})`, m.name)));
  $('instrument').onchange = () => swallow(onChoose());
  $('record').onclick = () => swallow(onRecord());
  $('live').onclick = () => swallow(onLive());
  $('file').onchange = () => swallow(onFile());
  $('cancel').onclick = cancelRender;
  $('octave').onchange = () => {
    if (state.live) worker.post({ type: 'live-octave', octaves: $('octave').value });
    else if (state.take) swallow(guarded(() => transfer(state.take.audio, state.take.label)));
  };
  $('gain').oninput = () => {
    $('gain-value').textContent = `${$('gain').value > 0 ? '+' : ''}${$('gain').value} dB`;
    if (state.last) { applyGain(state.last); show(state.last); }
    if (state.live) worker.post({ type: 'live-gain', gainDb: Number($('gain').value) });
  };
  for (const id of ['ab-voice', 'ab-instrument']) $(id).onchange = playThrough;
  await swallow(onChoose()); // the first instrument, loaded without a Load button
}

window.tonesweep = {
  ready: start(),
  models: () => state.models,
  load: (name, backend = null, { synth = 'js', liveGraph = true } = {}) => guarded(() => {
    state.synthPath = synth; // 'graph': synthesize in the TF.js graph as bundles before 2026-12 did (benchmarks)
    state.liveGraph = liveGraph; // false: live mode slides the bundle's graph, as before its live graph (benchmarks)
    return loadAndShow(name, backend);
  }),
  cancel: cancelRender,
  transferFile: (arrayBuffer, name) => guarded(() => transferFile(arrayBuffer, name)),
  record: (seconds) => guarded(() => record(seconds)),
  live: (seconds) => guarded(() => playLive(seconds)),
  last: () => state.last && { ...summary(state.last), audio: Array.from(state.last.audio),
    f0Hz: Array.from(state.last.input.f0Hz), voiced: Array.from(state.last.input.voiced),
    featureDb: Array.from(state.last.input.featureDb) },
  error: () => ($('error').hidden ? null : $('error').textContent),
};

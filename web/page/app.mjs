// The tone-transfer page: pick an exported instrument, sing (microphone) or pick a file, hear it
// played by the model. Same steps as `tonesweep transfer`: features (features.mjs), fit to the
// instrument's register and level, render chunk by chunk carrying phase and state (runner.mjs).
// window.tonesweep exposes the same actions to scripts (the end-to-end test drives them).

import { features, fitToInstrument, peakDb, SAMPLE_RATE, SILENCE_DB } from './features.mjs';
import { renderSignal } from './runner.mjs';
import { encodeWav } from './wav.mjs';

const $ = (id) => document.getElementById(id);
const state = { models: [], entry: null, model: null, card: null, recorder: null, last: null, busy: false };

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

async function loadModel(name, backend) {
  const entry = state.models.find((m) => m.name === name);
  if (!entry) throw new Error(`no model named ${name}`);
  if (backend === 'wasm' && typeof WebAssembly !== 'object') {
    throw new Error('this browser has no WebAssembly, which the wasm backend needs: choose WebGL or cpu');
  }
  if (backend === 'wasm') tf.wasm.setWasmPaths(new URL('page/vendor/', document.baseURI).href);
  let ok = false;
  try { ok = await tf.setBackend(backend); } catch { ok = false; }
  if (!ok) throw new Error(`the ${backend} backend does not start in this browser: choose another backend`);
  await tf.ready();
  let card;
  let model;
  try {
    const response = await fetch(`${entry.path}model-card.json`);
    if (!response.ok) throw new Error(`model-card.json: HTTP ${response.status}`);
    card = await response.json();
    model = await tf.loadGraphModel(`${entry.path}tfjs/model.json`);
  } catch (err) {
    throw new Error(`the ${name} model failed to load (${err.message}): re-export it with \`tonesweep export\``);
  }
  if (state.model) state.model.dispose();
  Object.assign(state, { entry, model, card });
  return { name, backend: tf.getBackend(), precision: card.precision, frameRate: card.frame_rate,
    decoder: card.decoder, feature: card.feature };
}

// ---------------------------------------------------------------------------- audio in

/** Any audio the browser decodes -> mono Float32Array at 16 kHz (the browser resamples). */
async function decode(arrayBuffer, label) {
  const context = new OfflineAudioContext(1, 1, SAMPLE_RATE);
  let decoded;
  try {
    decoded = await context.decodeAudioData(arrayBuffer.slice(0));
  } catch {
    throw new Error(`${label}: not an audio file this browser can decode; pick a WAV, MP3, OGG or FLAC file`);
  }
  const mono = new Float32Array(decoded.length);
  for (let c = 0; c < decoded.numberOfChannels; c++) {
    const channel = decoded.getChannelData(c);
    for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / decoded.numberOfChannels;
  }
  return mono;
}

async function openMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) throw new Error('this browser gives pages no microphone here (it needs https or localhost): pick a file instead');
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  } catch (err) {
    if (err.name === 'NotAllowedError' || err.name === 'SecurityError') {
      throw new Error('microphone permission denied: allow the microphone for this page (address bar), or pick a file instead');
    }
    if (err.name === 'NotFoundError') throw new Error('no microphone found: connect one, or pick a file instead');
    throw new Error(`the microphone did not open (${err.name}): pick a file instead`);
  }
}

async function startRecording() {
  if (!state.model) throw new Error('load a model first');
  const stream = await openMicrophone();
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.ondataavailable = (event) => chunks.push(event.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start();
  state.recorder = { recorder, stream, chunks, stopped };
}

async function stopRecording() {
  const rec = state.recorder;
  if (!rec) throw new Error('not recording');
  state.recorder = null;
  rec.recorder.stop();
  await rec.stopped;
  rec.stream.getTracks().forEach((track) => track.stop());
  const blob = new Blob(rec.chunks, { type: rec.recorder.mimeType });
  return transfer(await decode(await blob.arrayBuffer(), 'the recording'), 'the recording');
}

async function record(seconds) {
  await startRecording();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  return stopRecording();
}

async function transferFile(arrayBuffer, name) {
  if (!state.model) throw new Error('load a model first');
  return transfer(await decode(arrayBuffer, name), name);
}

// ---------------------------------------------------------------------------- the transfer

async function transfer(audio, label) {
  const { card, model } = state;
  const peak = peakDb(audio);
  if (!audio.length || !(peak >= SILENCE_DB)) {
    throw new Error(`${label}: silent (peak ${Number.isFinite(peak) ? peak.toFixed(0) : '-inf'} dBFS): sing closer to the microphone or pick a louder file`);
  }
  setStatus('computing pitch and loudness');
  const t0 = performance.now();
  const feats = features(audio, card);
  const featureMs = performance.now() - t0;
  if (Math.max(...feats.featureDb) < SILENCE_DB) throw new Error(`${label}: silent: sing closer to the microphone or pick a louder file`);
  const fit = fitToInstrument(feats.f0Hz, feats.featureDb, feats.voiced, card);
  const hop = card.layout.hop;
  const noise = new Float32Array(feats.f0Hz.length * hop).map(() => 2 * Math.random() - 1);
  setStatus(`rendering ${(audio.length / SAMPLE_RATE).toFixed(1)} s as ${card.instrument}`);
  const t1 = performance.now();
  const out = await renderSignal(tf, model, card.layout, fit.f0Hz, fit.featureDb, noise);
  const renderMs = performance.now() - t1;
  const seconds = out.length / SAMPLE_RATE;
  if (!out.every(Number.isFinite)) throw new Error(`the ${card.instrument} model produced invalid samples on the ${tf.getBackend()} backend: try the wasm backend`);
  state.last = { label, audio: out, input: feats, fitted: fit, seconds, renderMs, featureMs,
    rtf: (seconds * 1000) / renderMs, backend: tf.getBackend(), instrument: card.instrument };
  show(state.last);
  return summary(state.last);
}

function summary(last) {
  return { instrument: last.instrument, backend: last.backend, seconds: last.seconds, renderMs: last.renderMs,
    featureMs: last.featureMs, rtf: last.rtf, octaves: last.fitted.octaves, levelShiftDb: last.fitted.levelShiftDb };
}

// ---------------------------------------------------------------------------- drawing and output

function show(last) {
  const wav = new Blob([encodeWav(last.audio, SAMPLE_RATE)], { type: 'audio/wav' });
  const url = URL.createObjectURL(wav);
  $('player').src = url;
  $('download').href = url;
  $('download').download = `${last.label.replace(/\.[^.]*$/, '').replace(/[^\w.-]+/g, '_')}-as-${last.instrument}.wav`;
  $('download').hidden = false;
  drawPitch($('pitch'), last.input, last.fitted);
  drawWave($('wave'), last.audio);
  $('stats').textContent = `${last.seconds.toFixed(1)} s rendered in ${(last.renderMs / 1000).toFixed(2)} s on ${last.backend} `
    + `(${last.rtf.toFixed(1)}x real time); shifted ${last.fitted.octaves} octave(s), level ${last.fitted.levelShiftDb} dB`;
  setStatus('done: press play, or download the WAV');
}

function drawPitch(canvas, input, fitted) {
  const g = canvas.getContext('2d');
  const T = input.f0Hz.length;
  const midi = (hz) => 69 + 12 * Math.log2(hz / 440);
  const all = [];
  for (let t = 0; t < T; t++) if (input.voiced[t]) all.push(midi(input.f0Hz[t]), midi(fitted.f0Hz[t]));
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (!all.length) return;
  const lo = Math.min(...all) - 2;
  const hi = Math.max(...all) + 2;
  const y = (m) => canvas.height * (1 - (m - lo) / (hi - lo));
  const x = (t) => (t / T) * canvas.width;
  g.fillStyle = '#888';
  for (let t = 0; t < T; t++) if (input.voiced[t]) g.fillRect(x(t), y(midi(input.f0Hz[t])), 2, 2);
  g.strokeStyle = '#c50';
  g.beginPath();
  for (let t = 0; t < T; t++) g[t ? 'lineTo' : 'moveTo'](x(t), y(midi(fitted.f0Hz[t])));
  g.stroke();
}

function drawWave(canvas, audio) {
  const g = canvas.getContext('2d');
  const mid = canvas.height / 2;
  const per = Math.max(1, Math.floor(audio.length / canvas.width));
  let peak = 1e-9;
  for (let i = 0; i < audio.length; i++) peak = Math.max(peak, Math.abs(audio[i]));
  const scale = mid / peak; // drawn to the full height; the WAV keeps the model's level
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = '#258';
  for (let px = 0; px < canvas.width; px++) {
    let lo = 0;
    let hi = 0;
    for (let i = px * per; i < Math.min(audio.length, (px + 1) * per); i++) {
      lo = Math.min(lo, audio[i]);
      hi = Math.max(hi, audio[i]);
    }
    g.fillRect(px, mid - hi * scale, 1, Math.max(1, (hi - lo) * scale));
  }
}

// ---------------------------------------------------------------------------- wiring

async function guarded(action) {
  if (state.busy) return undefined;
  state.busy = true;
  clearError();
  try {
    return await action();
  } catch (err) {
    showError(err);
    throw err;
  } finally {
    state.busy = false;
  }
}

async function loadAndShow(name, backend) {
  const info = await loadModel(name, backend);
  $('instrument').value = name;
  $('backend').value = backend;
  $('model-info').textContent = `${info.name}: ${info.decoder}, ${info.feature}, ${info.frameRate} Hz frames, `
    + `${info.precision} weights, on ${info.backend}`;
  $('record').disabled = false;
  $('file').disabled = false;
  setStatus('ready: record or pick a file');
  return info;
}

const onLoad = () => guarded(() => loadAndShow($('instrument').value, $('backend').value));

async function onRecord() {
  if (state.recorder) {
    $('record').textContent = 'Record';
    await guarded(stopRecording);
    return;
  }
  await guarded(startRecording);
  $('record').textContent = 'Stop';
  setStatus('recording: sing, then press Stop');
}

async function onFile() {
  const file = $('file').files[0];
  if (file) await guarded(async () => transferFile(await file.arrayBuffer(), file.name));
}

const swallow = (promise) => promise.catch(() => {}); // shown in the page by guarded()

async function start() {
  if (typeof WebAssembly !== 'object') {
    $('backend').value = 'cpu';
    showError('this browser has no WebAssembly, which the fast wasm backend needs: using the cpu backend');
  }
  try {
    state.models = await listModels();
  } catch (err) {
    showError(err);
    return;
  }
  $('instrument').replaceChildren(...state.models.map((m) => new Option(`${m.name} (${m.precision})`, m.name)));
  $('load').onclick = () => swallow(onLoad());
  $('record').onclick = () => swallow(onRecord());
  $('file').onchange = () => swallow(onFile());
  if ($('error').hidden) setStatus('choose an instrument and press Load');
}

window.tonesweep = {
  ready: start(),
  models: () => state.models,
  load: (name, backend = 'wasm') => guarded(() => loadAndShow(name, backend)),
  transferFile: (arrayBuffer, name) => guarded(() => transferFile(arrayBuffer, name)),
  record: (seconds) => guarded(() => record(seconds)),
  last: () => state.last && { ...summary(state.last), audio: Array.from(state.last.audio),
    f0Hz: Array.from(state.last.input.f0Hz), voiced: Array.from(state.last.input.voiced),
    featureDb: Array.from(state.last.input.featureDb) },
  error: () => ($('error').hidden ? null : $('error').textContent),
};

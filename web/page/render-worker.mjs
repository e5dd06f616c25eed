// The render worker: TF.js, the model and the chunked renderer live here, off the page's main thread,
// so the page keeps drawing, shows progress and can cancel while a take renders.
//
// Live mode runs here too: the audio thread (live-worklet.mjs) sends the microphone's samples through a
// MessagePort; their features (features.mjs LiveFeatures) feed live.mjs's LiveRenderer, whose blocks go
// back through the port to be played.
//
// Messages in:  {type: 'load', id, url (the bundle folder), backend (null: the runtime's own)}
//               {type: 'render', id, layout, synth, f0Hz, featureDb, noise}     {type: 'cancel', id}
//               (synth: the card's "synth" to synthesize in JavaScript (js/synth.mjs), or none: in the graph)
//               {type: 'live', id, port, card, octaves, block, gainDb}   {type: 'live-gain', gainDb}
//               {type: 'live-octave', octaves}
//               {type: 'live-stop', id}
// Messages out: {type: 'loaded', id, backend}   {type: 'progress', id, done, total}
//               {type: 'rendered', id, audio, renderMs, backend}
//               {type: 'live-started', id}   {type: 'live-stopped', id, ...the take (liveTake)}   {type: 'live-error', message}
//               {type: 'error', id, message, cancelled, stage ('backend' when the backend would not start)}

import { LiveFeatures, LiveLevel } from './features.mjs';
import { liveLayout, LiveRenderer } from './live.mjs';
import { concatenate, renderSignal, synthesizesOutside } from './runner.mjs';
// TF.js holding only what tonesweep's graphs use, on the backend(s) it was built with (trainers/export/js/
// build_runtime.mjs, trainers/export/js/runtime.json)
import * as tf from './vendor/tf-runtime.mjs';

let model = null;
let modelUrl = null;  // the loaded bundle's folder
let liveModel = null; // its live graph (card.live), loaded when live mode first starts
let backendName = null;
const cancelled = new Set();

/** backend: one the runtime holds, or null: the runtime's own (the first it was built with). */
async function load({ id, url, backend: asked }) {
  const backend = asked ?? tf.engine().backendNames()[0];
  if (backend !== backendName) {
    if (!tf.engine().backendNames().includes(backend)) {
      throw Object.assign(new Error(`the ${backend} backend is not in this page's runtime: it runs models on `
        + `${tf.engine().backendNames().join(', ')}`), { stage: 'backend' });
    }
    if (backend === 'wasm') tf.setWasmPaths(new URL('./vendor/', import.meta.url).href);
    let ok = false;
    try { ok = await tf.setBackend(backend); } catch { ok = false; }
    if (!ok) {
      throw Object.assign(new Error(`the ${backend} backend does not start in this browser: choose another backend`),
        { stage: 'backend' });
    }
    await tf.ready();
    backendName = backend;
  }
  const next = await tf.loadGraphModel(new URL('tfjs/model.json', url).href, {
    onProgress: (fraction) => postMessage({ type: 'progress', id, done: fraction, total: 1 }),
  });
  if (model) model.dispose();
  liveModel?.dispose();
  [model, modelUrl, liveModel] = [next, url, null];
  return { backend: tf.getBackend() };
}

async function render({ id, layout, synth, f0Hz, featureDb, noise }) {
  if (!model) throw new Error('no model loaded');
  const started = performance.now();
  const onChunk = async (done, total) => {
    postMessage({ type: 'progress', id, done, total });
    await new Promise((resolve) => setTimeout(resolve, 0)); // let a cancel message in
    return !cancelled.has(id);
  };
  const audio = await renderSignal(tf, model, layout, f0Hz, featureDb, noise, { onChunk, synth });
  return { audio, renderMs: performance.now() - started, backend: tf.getBackend(),
    synth: synthesizesOutside(model, layout, synth) ? 'js' : 'graph' };
}

// ---------------------------------------------------------------------------- live mode

let live = null;

/** A quarter second of a tone through features and a renderer of their own: the first calls of the
 * graph (TF.js allocates then) and of the JavaScript (compiled as it runs) are the slowest, and a live
 * block has a fixed time to arrive (every late block in a test was among the stream's first 0.15 s). */
async function warmUp(card, graph, block) {
  const features = new LiveFeatures(card);
  const warm = new LiveRenderer(tf, graph.model, graph.layout, card.synth, block);
  const level = new LiveLevel();
  const tone = Float32Array.from({ length: 128 }, (_, i) => 0.1 * Math.sin((2 * Math.PI * 220 * i) / 16000));
  const blockMs = [];
  for (let quantum = 0; quantum < 32; quantum++) {
    for (const frame of features.push(tone)) warm.addFrame(frame.fittedF0Hz, frame.fittedDb);
    while (warm.ready()) {
      const started = performance.now();
      level.apply((await warm.renderBlock()).audio);
      blockMs.push(performance.now() - started);
    }
  }
  const blockDurationMs = (1000 * warm.B * graph.layout.hop) / graph.layout.sample_rate;
  refuseIfTooSlow(card, blockDurationMs, blockMs.slice(blockMs.length >> 1)); // (the first calls allocate, compile)
}

/** A model that renders a warmed-up block slower than the block plays would make every block late: said in words
 * instead (e.g. a GRU bundle exported before live graphs, whose second-long graph would decode per block). */
function refuseIfTooSlow(card, blockDurationMs, warmBlockMs) {
  const ms = warmBlockMs.slice().sort((a, b) => a - b)[warmBlockMs.length >> 1];
  if (!(ms > blockDurationMs)) return;
  const why = card.live ? '' : ' (this bundle has no live graph: re-export it with `tonesweep export`)';
  throw new Error(`${card.instrument} renders a ${Math.round(blockDurationMs)}-ms live block in ${Math.round(ms)} ms, `
    + `too slow to play live${why}; record a take instead`);
}

/** The graph live mode renders with and its layout: the bundle's live graph, a block per call (card.live), or
 * for a bundle exported before it had one, the bundle's graph, its window slid a block at a time. */
async function liveGraph(card) {
  if (!card.live) return { model, layout: liveLayout(card) };
  try {
    liveModel ??= await tf.loadGraphModel(new URL(card.live.model, modelUrl).href);
  } catch (err) {
    throw new Error(`the live graph ${card.live.model} did not load (${err?.message ?? err}): re-export the bundle with `
      + '`tonesweep export`, or record a take instead');
  }
  return { model: liveModel, layout: liveLayout(card) };
}

async function startLive({ id, port, card, octaves, block, gainDb }) {
  if (!model) throw new Error('no model loaded');
  const graph = await liveGraph(card);
  await warmUp(card, graph, block);
  // origin: the audio thread's sample at which this stream began (it may have run before the port connected)
  const session = { id, port, card, origin: null, busy: false, failed: null, voice: [], blocks: [], frames: [], blockMs: [],
    featureMs: 0, renderer: new LiveRenderer(tf, graph.model, graph.layout, card.synth, block),
    features: new LiveFeatures(card, { octaves }), level: new LiveLevel(gainDb) };
  port.onmessage = ({ data }) => {
    if (live !== session) return;
    const started = performance.now();
    session.origin ??= data.at;
    session.voice.push(data.samples);
    for (const frame of session.features.push(data.samples)) {
      session.frames.push(frame);
      session.renderer.addFrame(frame.fittedF0Hz, frame.fittedDb);
    }
    session.featureMs += performance.now() - started;
    pump(session);
  };
  live = session;
}

/** Render every block whose features have arrived, one at a time, and send each to the audio thread. */
async function pump(session) {
  if (session.busy || session.failed) return;
  session.busy = true;
  try {
    while (live === session && session.renderer.ready()) {
      const started = performance.now();
      const { frame, audio } = await session.renderer.renderBlock();
      const heard = session.level.apply(audio);
      session.blockMs.push(performance.now() - started);
      session.blocks.push(heard.slice());
      session.port.postMessage({ start: session.origin + frame * session.card.layout.hop, audio: heard }, [heard.buffer]);
    }
  } catch (err) {
    session.failed = String(err?.message ?? err);
    postMessage({ type: 'live-error', message: `live rendering stopped: ${session.failed}` }); // its request was answered
  } finally {
    session.busy = false;
  }
}

/** What a live session heard and played: the voice, the instrument (from frame 0), the frames' features. */
function liveTake(session) {
  const { frames } = session;
  return { voice: concatenate(session.voice), audio: concatenate(session.blocks), blockMs: session.blockMs,
    featureMs: session.featureMs, f0Hz: Float32Array.from(frames, (f) => f.f0Hz || 0),
    voiced: Uint8Array.from(frames, (f) => f.voiced), featureDb: Float32Array.from(frames, (f) => f.featureDb),
    fittedF0Hz: Float32Array.from(frames, (f) => f.fittedF0Hz), octaves: frames.at(-1)?.octaves ?? 0,
    gainDb: session.level.gainDb, backend: tf.getBackend() };
}

function stopLive() {
  const session = live;
  live = null;
  if (!session) throw new Error('live mode is not running');
  session.port.close();
  return liveTake(session);
}

onmessage = async ({ data }) => {
  if (data.type === 'cancel') { cancelled.add(data.id); return; }
  if (data.type === 'live-gain') { if (live) live.level.extraDb = data.gainDb; return; }
  if (data.type === 'live-octave') { if (live) live.features.chosen = data.octaves; return; }
  try {
    if (data.type === 'load') {
      postMessage({ type: 'loaded', id: data.id, ...(await load(data)) });
    } else if (data.type === 'render') {
      const out = await render(data);
      postMessage({ type: 'rendered', id: data.id, ...out }, [out.audio.buffer]);
    } else if (data.type === 'live') {
      await startLive(data);
      postMessage({ type: 'live-started', id: data.id });
    } else if (data.type === 'live-stop') {
      const take = stopLive();
      postMessage({ type: 'live-stopped', id: data.id, ...take }, [take.voice.buffer, take.audio.buffer]);
    }
  } catch (err) {
    const stopped = cancelled.has(data.id);
    postMessage({ type: 'error', id: data.id, cancelled: stopped, stage: err?.stage,
      message: stopped ? 'cancelled' : String(err?.message ?? err) });
  } finally {
    cancelled.delete(data.id);
  }
};

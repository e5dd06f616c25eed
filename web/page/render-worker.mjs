// The render worker: TF.js, the model and the chunked renderer live here, off the page's main thread,
// so the page keeps drawing, shows progress and can cancel while a take renders.
//
// Messages in:  {type: 'load', id, url (the bundle folder), backend}
//               {type: 'render', id, layout, synth, f0Hz, featureDb, noise}     {type: 'cancel', id}
//               (synth: the card's "synth" to synthesize in JavaScript (js/synth.mjs), or none: in the graph)
// Messages out: {type: 'loaded', id, backend}   {type: 'progress', id, done, total}
//               {type: 'rendered', id, audio, renderMs, backend}
//               {type: 'error', id, message, cancelled, stage ('backend' when the backend would not start)}

import { renderSignal, synthesizesOutside } from './runner.mjs';
// TF.js holding only what tonesweep's graphs use, on its wasm backend (trainers/export/js/build_runtime.mjs)
import * as tf from './vendor/tf-runtime.mjs';

let model = null;
let backendName = null;
const cancelled = new Set();

async function load({ id, url, backend }) {
  if (backend !== backendName) {
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
  model = next;
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

onmessage = async ({ data }) => {
  if (data.type === 'cancel') { cancelled.add(data.id); return; }
  try {
    if (data.type === 'load') {
      postMessage({ type: 'loaded', id: data.id, ...(await load(data)) });
    } else if (data.type === 'render') {
      const out = await render(data);
      postMessage({ type: 'rendered', id: data.id, ...out }, [out.audio.buffer]);
    }
  } catch (err) {
    const stopped = cancelled.has(data.id);
    postMessage({ type: 'error', id: data.id, cancelled: stopped, stage: err?.stage,
      message: stopped ? 'cancelled' : String(err?.message ?? err) });
  } finally {
    cancelled.delete(data.id);
  }
};

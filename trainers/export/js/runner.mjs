// Run one call of an exported tonesweep graph model with TF.js (Node or browser).
//
// The converted model's signature maps each named input/output to a graph node
// ("f0_hz:0", "Identity_2:0", ...); outputs are fetched by those node names, in a fixed
// order, and returned under their signature keys (audio, next_phase, ...), because the
// graph's Identity_k numbering follows sorted keys, not the order they were defined in.

import { Synth } from './synth.mjs';

/** Signature key -> graph node name, for inputs and outputs. */
export function signatureNames(model) {
  const strip = (name) => name.replace(/:0$/, '');
  const map = (entries) => Object.fromEntries(
    Object.entries(entries).map(([key, spec]) => [strip(key), strip(spec.name)]));
  return { inputs: map(model.signature.inputs), outputs: map(model.signature.outputs) };
}

/**
 * One call. inputs: {name: {shape: number[], data: Float32Array}} keyed like the signature.
 * only: the output keys to fetch (default: all); TF.js runs only the nodes they need.
 * Returns {outputs: {name: {shape, data}}, ms: wall time of the execution + download}.
 */
export async function render(tf, model, inputs, only = null) {
  const names = signatureNames(model);
  const feeds = {};
  for (const [key, node] of Object.entries(names.inputs)) {
    if (!(key in inputs)) throw new Error(`missing input ${key}`);
    feeds[node] = tf.tensor(inputs[key].data, inputs[key].shape, 'float32');
  }
  const keys = (only ?? Object.keys(names.outputs)).slice().sort();
  const start = performance.now();
  const tensors = await execute(model, feeds, keys.map((k) => names.outputs[k]));
  const list = Array.isArray(tensors) ? tensors : [tensors];
  const outputs = {};
  for (let i = 0; i < keys.length; i++) {
    outputs[keys[i]] = { shape: list[i].shape, data: list[i].dataSync() };
  }
  const ms = performance.now() - start;
  tf.dispose([...Object.values(feeds), ...list]);
  return { outputs, ms };
}

const DYNAMIC = new WeakSet(); // models whose graph has control flow (the GRU's while loop)

/** model.execute, or executeAsync for a graph that execute() refuses (control flow: the GRU's while loop).
 * execute() costs about half as much per call, which a live block of a few milliseconds feels. */
async function execute(model, feeds, outputs) {
  if (!DYNAMIC.has(model)) {
    try {
      return model.execute(feeds, outputs);
    } catch (err) {
      if (!/dynamic op/.test(String(err?.message))) throw err;
      DYNAMIC.add(model);
    }
  }
  return model.executeAsync(feeds, outputs);
}

/**
 * Phases after one call, in float64 (JS numbers): the graph's float32 next_phase would let its
 * rounding error add up over minutes. Same formula as trainers/export/transfer.py advance_phase:
 * over frame j the phase of harmonic k advances by 2 pi k (H f_j + (f_{j+1} - f_j)(H - 1)/2) / sr.
 */
export function advancePhase(phase, f0Frames, hop, sampleRate) {
  let cycles = 0;
  for (let j = 0; j + 1 < f0Frames.length; j++) {
    cycles += hop * f0Frames[j] + (f0Frames[j + 1] - f0Frames[j]) * (hop - 1) / 2;
  }
  cycles /= sampleRate;
  const out = new Float32Array(phase.length);
  for (let k = 0; k < phase.length; k++) {
    const turns = ((k + 1) * cycles) % 1;
    out[k] = (phase[k] + 2 * Math.PI * turns) % (2 * Math.PI);
  }
  return out;
}

/**
 * Render a whole signal chunk by chunk (what `tonesweep transfer` does in Python).
 * layout: model-card.json's "layout"; f0Hz, featureDb: per-frame arrays [T];
 * noise: Float32Array [T * hop], uniform in [-1, 1). Returns Float32Array [T * hop].
 * Context frames before the signal copy its first frame; frames after it copy its last frame.
 * onChunk(done, total), if given, is awaited after every call; when it returns false the render stops
 * with an Error('cancelled') (the page's worker reports progress and takes a cancel there).
 * synth (a model card's "synth"), if given and the graph outputs its controls (bundles since they do) and
 * has no reverb: the graph runs its decoder only and synth.mjs synthesizes (synthesizesOutside tells).
 */
export async function renderSignal(tf, model, layout, f0Hz, featureDb, noise, { onChunk, synth } = {}) {
  const { hop, frames_per_call: F, context_before: P, input_frames: N } = layout;
  const T = f0Hz.length;
  const calls = Math.ceil(T / F);
  const padded = (x) => {
    const out = new Float32Array(calls * F + N - F);
    for (let i = 0; i < out.length; i++) out[i] = x[Math.min(Math.max(i - P, 0), T - 1)];
    return out;
  };
  const f0 = padded(f0Hz);
  const feature = padded(featureDb);
  const noisePadded = new Float32Array((calls * F + N - F) * hop);
  noisePadded.set(noise.subarray(0, T * hop), P * hop);
  const names = signatureNames(model).inputs;
  const zeros = (n) => ({ shape: [1, n], data: new Float32Array(n) });
  let carries = { phase: zeros(layout.n_harmonics), noise_tail: zeros(layout.noise_tail) };
  if ('state' in names) carries.state = zeros(layout.state_size);
  if ('reverb_tail' in names) carries.reverb_tail = zeros(layout.reverb_tail);
  const audio = new Float32Array(calls * F * hop);
  const outside = synthesizesOutside(model, layout, synth) ? new Synth(layout, synth) : null;
  const fetched = outside ? CONTROLS.concat('state' in names ? ['next_state'] : []) : null;
  for (let c = 0; c < calls; c++) {
    const first = c * F;
    const inputs = {
      f0_hz: { shape: [1, N, 1], data: f0.subarray(first, first + N) },
      feature_db: { shape: [1, N, 1], data: feature.subarray(first, first + N) },
      noise: { shape: [1, N * hop], data: noisePadded.subarray(first * hop, (first + N) * hop) },
      ...carries,
    };
    const { outputs } = await render(tf, model, inputs, fetched);
    const from = first + P;
    const rendered = f0.subarray(from, from + F + 1); // this call's frames and the next call's first
    audio.set(outside ? outside.render({
      f0: rendered, amplitudes: outputs.amplitudes.data,
      distribution: outputs.harmonic_distribution.data, magnitudes: outputs.noise_magnitudes.data,
      noise: noisePadded.subarray(from * hop, (from + F + layout.lookahead) * hop),
    }) : outputs.audio.data, first * hop);
    const next = { ...carries }; // the carries the graph returned replace those it was given (JS synthesis: the state only)
    for (const [key, t] of Object.entries(outputs)) {
      if (key.startsWith('next_')) next[key.slice(5)] = { shape: t.shape, data: t.data };
    }
    next.phase = { shape: [1, layout.n_harmonics],
      data: advancePhase(carries.phase.data, rendered, hop, layout.sample_rate) };
    carries = next;
    if (onChunk && (await onChunk(c + 1, calls)) === false) throw new Error('cancelled');
  }
  return audio.subarray(0, T * hop);
}

/** The graph's control outputs, what synth.mjs synthesizes from (live.mjs fetches them too). */
export const CONTROLS = ['amplitudes', 'harmonic_distribution', 'noise_magnitudes'];

/** Whether renderSignal synthesizes in JavaScript for this model: the card says how (synth), the graph
 * outputs the controls, and there is no reverb (its long FIR stays in the graph). */
export function synthesizesOutside(model, layout, synth) {
  const outputs = signatureNames(model).outputs;
  return Boolean(synth?.noise_window) && CONTROLS.every((key) => key in outputs) && !layout.reverb_tail;
}

/** Float32Arrays one after another, as one. */
export function concatenate(parts) {
  const out = new Float32Array(parts.reduce((n, part) => n + part.length, 0));
  parts.reduce((at, part) => { out.set(part, at); return at + part.length; }, 0);
  return out;
}

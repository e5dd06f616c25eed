// Live rendering: an exported bundle played a few frames at a time while the features arrive (the page's
// live mode), instead of a second per call.
//
// A bundle's live graph (the card's "live", trainers/export/bundle.py) renders a block per call: it is run call
// by call, a GRU's state carried as in renderSignal. A bundle exported before it had one slides its graph: the
// graph keeps its shape (input_frames = P + F + La + R frames in, controls for F (+La) frames out), so a block of
// B new frames is decoded on the window whose output frames end with them: input frames from s + B - F - P to
// s + B - 1 + La + R, for the block's first frame s. A convolutional decoder's output depends only on its
// receptive field (P before, R after), so every control equals the one a second-per-call render computes; a
// GRU's state is not carried between windows (each starts from zeros and its window's second of frames).
// synth.mjs then synthesizes the B frames, carrying phase and noise spill.
//
// A block of frames [s, s + B) can render once the features of frames up to s + B - 1 + La + R are known:
// that wait, times the hop, is the model's share of the live delay (framesAhead).

import { concatenate, CONTROLS, render, signatureNames, synthesizesOutside } from './runner.mjs';
import { Synth } from './synth.mjs';

/** The layout live mode renders with: the live graph's, or for a bundle without one, the bundle graph's. The
 * page's audio thread (its delay) and its render worker (the graph it loads) both take it from here. */
export function liveLayout(card) {
  return card.live?.layout ?? card.layout;
}

/** Frames after a block's last frame whose features a block needs: the synth's lookahead and the decoder's
 * right context (a non-causal CNN). */
export function framesAhead(layout) {
  return layout.lookahead + (layout.context_after ?? 0);
}

// A bundle without a live graph (exported before it had one) slides its graph's window this much per block;
// a live graph's own call is the block (trainers/export/bundle.py LIVE_BLOCK_SECONDS)
export const SLIDING_BLOCK_SECONDS = 0.02;
const QUANTUM = 128; // samples of an AudioWorklet's render quantum: the input arrives in these

/**
 * The live block (frames) and the delay (samples) from the voice to the instrument inside the page, for a
 * feature that needs `reach` samples after a frame (half the pitch window). The block's first sample waits
 * for the rest of the block, the frames the model needs after it, the feature's reach and the quantum that
 * brings the last of them; then the render gets a margin of a quantum and a block, or the audio device's
 * buffer (`buffer` samples, AudioContext.baseLatency) when longer: the audio thread runs a buffer's quanta
 * back to back, so a block finished just after one buffer plays in the next. A bundle that renders a few
 * frames per call (2 blocks or fewer) is run call by call, its GRU state carried.
 */
export function liveTiming(layout, reach, buffer = 0) {
  const { hop, frames_per_call: F, sample_rate: rate } = layout;
  let block = Math.max(1, Math.round((SLIDING_BLOCK_SECONDS * rate) / hop));
  if (F <= 2 * block) block = F;
  const waiting = (block - 1 + framesAhead(layout)) * hop + reach + QUANTUM;
  return { block, delay: waiting + QUANTUM + Math.max(block * hop, Math.ceil(buffer)) };
}

export class LiveRenderer {
  /** tf, model: TF.js and the loaded graph; layout, synth: the model card's; block: frames per block;
   * noiseAt(frame): that frame's hop samples of noise (default: uniform in [-1, 1), drawn once per frame). */
  constructor(tf, model, layout, synth, block, { noiseAt = null } = {}) {
    if (!synthesizesOutside(model, layout, synth)) {
      throw new Error('live mode needs a bundle that synthesizes in JavaScript (exported since 2026-12, no reverb): '
        + 're-export it with `tonesweep export`');
    }
    const F = layout.frames_per_call;
    Object.assign(this, { tf, model, layout, B: Math.min(block, F), F, ahead: framesAhead(layout), synth: new Synth(layout, synth) });
    this.native = this.B === F; // the graph renders exactly a block per call: carry its GRU state
    this.names = signatureNames(model).inputs;
    this.f0 = [];        // fitted features per frame since the start (absolute frame index)
    this.level = [];
    this.noise = [];     // per frame since `dropped`: its noise, the same in every call that renders the frame
    this.dropped = 0;
    this.noiseAt = noiseAt ?? (() => Float32Array.from({ length: layout.hop }, () => 2 * Math.random() - 1));
    this.next = 0;       // the next block's first frame
    this.state = 'state' in this.names ? new Float32Array(layout.state_size) : null;
    // inputs the controls do not depend on, made once (a block every 20 ms would otherwise allocate a
    // window of noise each time, and the garbage collector's pauses make blocks late)
    const zeros = (n) => ({ shape: [1, n], data: new Float32Array(n) });
    this.unused = { noise: zeros(layout.input_frames * layout.hop), phase: zeros(layout.n_harmonics),
      noise_tail: zeros(layout.noise_tail) };
  }

  /** One frame's fitted features (f0 in Hz after the octave shift, the level feature in dB). */
  addFrame(f0Hz, featureDb) {
    this.f0.push(f0Hz);
    this.level.push(featureDb);
  }

  /** Whether the next block's features have all arrived. */
  ready() {
    return this.f0.length >= this.next + this.B + this.ahead;
  }

  /** Render the next block: {frame (its first), audio (B * hop samples)}. */
  async renderBlock() {
    const { layout, B, F } = this;
    const { hop, context_before: P, input_frames: N } = layout;
    const s = this.next;
    const first = s + B - F - P; // the window's first input frame; before frame 0: frame 0 (as renderSignal pads)
    const window = (values) => {
      const out = new Float32Array(N);
      for (let i = 0; i < N; i++) out[i] = values[Math.min(Math.max(first + i, 0), values.length - 1)];
      return out;
    };
    const inputs = {
      f0_hz: { shape: [1, N, 1], data: window(this.f0) },
      feature_db: { shape: [1, N, 1], data: window(this.level) },
      ...this.unused,
    };
    if (this.state) inputs.state = { shape: [1, layout.state_size], data: this.native ? this.state : new Float32Array(layout.state_size) };
    const { outputs } = await render(this.tf, this.model, inputs, CONTROLS.concat(this.native && this.state ? ['next_state'] : []));
    if (this.native && this.state) this.state = outputs.next_state.data;
    const K = layout.n_harmonics;
    const bands = layout.n_noise_bands;
    const at = F - B; // the block's first frame among the window's output frames
    const f0 = new Float32Array(B + 1);
    for (let j = 0; j <= B; j++) f0[j] = this.f0[Math.min(s + j, this.f0.length - 1)];
    const audio = this.synth.render({
      f0,
      amplitudes: outputs.amplitudes.data.subarray(at, F + 1),
      distribution: outputs.harmonic_distribution.data.subarray(at * K, (F + 1) * K),
      magnitudes: outputs.noise_magnitudes.data.subarray(at * bands, (F + layout.lookahead) * bands),
      noise: this.noiseFor(s, B + layout.lookahead),
    }, B);
    this.next = s + B;
    this.forget();
    return { frame: s, audio };
  }

  /** The noise of `count` frames from `first`. */
  noiseFor(first, count) {
    const hop = this.layout.hop;
    const out = new Float32Array(count * hop);
    for (let t = 0; t < count; t++) {
      while (this.noise.length <= first + t - this.dropped) this.noise.push(this.noiseAt(this.dropped + this.noise.length));
      out.set(this.noise[first + t - this.dropped], t * hop);
    }
    return out;
  }

  /** Drop the noise of frames no block renders again (the features stay: windows reach back a call). */
  forget() {
    const done = this.next - this.dropped;
    if (done > 4 * this.F) { this.noise.splice(0, done); this.dropped += done; }
  }
}

/**
 * A whole signal through LiveRenderer, as if its frames arrived live (export's checks and benchmarks):
 * f0Hz, featureDb per frame, noise [T * hop]. Returns {audio (the blocks rendered, from frame 0),
 * blockMs (each block's render time)}; the last frames, whose blocks would need features past the end,
 * are not rendered.
 */
export async function renderLiveSignal(tf, model, layout, synth, f0Hz, featureDb, noise, block) {
  const hop = layout.hop;
  const live = new LiveRenderer(tf, model, layout, synth, block,
    { noiseAt: (frame) => noise.slice(frame * hop, (frame + 1) * hop) });
  const blocks = [];
  const blockMs = [];
  for (let t = 0; t < f0Hz.length; t++) {
    live.addFrame(f0Hz[t], featureDb[t]);
    while (live.ready()) {
      const started = performance.now();
      blocks.push((await live.renderBlock()).audio);
      blockMs.push(performance.now() - started);
    }
  }
  return { audio: concatenate(blocks), blockMs };
}

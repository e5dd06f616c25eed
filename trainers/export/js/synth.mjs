// The synthesizer outside the graph: ddsp's harmonic and filtered-noise synthesis in plain JavaScript, from
// the controls the exported graph outputs (trainers/export/graph.py: amplitudes, harmonic_distribution,
// noise_magnitudes), so a runtime runs only the decoder in TF.js. The formulas are those of
// trainers/export/safe_ops.py, in float64 where the graph computes in float32:
//
//   harmonic: frequencies interpolated linearly between frames, amplitudes cross-faded with the halves of a
//     periodic Hann window of 2 hops, harmonics at or above Nyquist silent, phase the running sum of the
//     frequency (inclusive) carried across calls in cycles; harmonic k's phase is (k+1) times the
//     fundamental's, so sin((k+1)x) comes from a Chebyshev recurrence instead of one sine per harmonic;
//   noise: each frame's FIR = magnitudes x ddsp's filter design (the card's synth.noise_fir factors), the
//     frame's noise convolved with it in full, overlap-added, the filter's delay trimmed; what frames of
//     this call spill past its end is carried into the next call (the lookahead frames spill again there).
//
// One Synth renders one signal, call after call, holding the carries. A call renders the layout's frames per
// call, or fewer (the page's live mode renders a few frames at a time from the same controls).

export class Synth {
  /** layout: the model card's "layout"; spec: its "synth" ({noise_window}). */
  constructor(layout, spec) {
    const { hop, n_harmonics: K, n_noise_bands: N, sample_rate: sr, frames_per_call: F, lookahead } = layout;
    const { rowScale, index, gain, size } = noiseFilterDesign(N, spec.noise_window);
    Object.assign(this, { hop, K, N, sr, F, lookahead, tailLength: layout.noise_tail,
      delay: Math.floor((index.length - 1) / 2) - 1 });
    this.fall = new Float64Array(hop);
    this.rise = new Float64Array(hop);
    for (let r = 0; r < hop; r++) {
      this.rise[r] = 0.5 - 0.5 * Math.cos((2 * Math.PI * r) / (2 * hop));
      this.fall[r] = 0.5 - 0.5 * Math.cos((2 * Math.PI * (hop + r)) / (2 * hop));
    }
    this.taps = index.length;
    this.design = new Float64Array(N * this.taps); // [N][J]: magnitudes @ design = the reversed FIR
    for (let k = 0; k < N; k++) {
      for (let j = 0; j < this.taps; j++) {
        this.design[k * this.taps + j] = rowScale[k] * Math.cos((2 * Math.PI * ((k * index[j]) % size)) / size) * gain[j];
      }
    }
    this.cycles = 0; // the fundamental's phase, in cycles, before the next sample
    this.tail = new Float64Array(this.tailLength);
  }

  /**
   * One call of F frames (default: the layout's frames per call): F*hop samples. f0 [F+1] Hz (the rendered
   * frames and the next), amplitudes [F+1], distribution [(F+1)*K], magnitudes [(F+La)*N], noise [(F+La)*hop]
   * (this call's frames' noise).
   */
  render({ f0, amplitudes, distribution, magnitudes, noise }, F = this.F) {
    const out = new Float32Array(F * this.hop);
    this.harmonic(out, F, f0, amplitudes, distribution);
    this.filteredNoise(out, F, magnitudes, noise);
    return out;
  }

  harmonic(out, F, f0, amplitudes, distribution) {
    const { hop, K, sr, fall, rise } = this;
    const nyquist = sr / 2;
    const envelope = new Float64Array(K);
    const next = new Float64Array(K);
    for (let j = 0; j < F; j++) {
      for (let k = 0; k < K; k++) {
        envelope[k] = amplitudes[j] * distribution[j * K + k];
        next[k] = amplitudes[j + 1] * distribution[(j + 1) * K + k];
      }
      for (let r = 0; r < hop; r++) {
        const f = f0[j] + ((f0[j + 1] - f0[j]) * r) / hop;
        this.cycles += f / sr;
        this.cycles -= Math.floor(this.cycles);
        const angle = 2 * Math.PI * this.cycles;
        const twoCos = 2 * Math.cos(angle);
        let previous = 0;
        let current = Math.sin(angle); // sin((k+1) angle) for k = 0
        let sum = 0;
        const audible = f > 0 ? Math.min(K, Math.ceil(nyquist / f) - 1) : K; // (k+1) f < Nyquist
        for (let k = 0; k < audible; k++) {
          sum += (envelope[k] * fall[r] + next[k] * rise[r]) * current;
          const following = twoCos * current - previous;
          previous = current;
          current = following;
        }
        out[j * hop + r] += sum;
      }
    }
  }

  filteredNoise(out, F, magnitudes, noise) {
    const { hop, N, taps, design, delay, tailLength } = this;
    const frames = F + this.lookahead;
    const span = (frames + Math.ceil((hop + taps - 1) / hop)) * hop;
    const own = new Float64Array(span);   // this call's frames
    const ahead = new Float64Array(span); // the lookahead frames (rendered again, in full, by the next call)
    const fir = new Float64Array(taps);
    for (let t = 0; t < frames; t++) {
      fir.fill(0);
      for (let k = 0; k < N; k++) {
        const m = magnitudes[t * N + k];
        if (m === 0) continue;
        const row = k * taps;
        for (let j = 0; j < taps; j++) fir[j] += m * design[row + j];
      }
      // full convolution of the frame's noise with the FIR (safe_ops.filter_frames correlates with the reversed taps)
      const target = t < F ? own : ahead;
      for (let p = 0; p < hop; p++) {
        const x = noise[t * hop + p];
        const base = t * hop + p + taps - 1;
        for (let j = 0; j < taps; j++) target[base - j] += x * fir[j];
      }
    }
    const length = F * hop;
    const end = delay + length;
    for (let n = 0; n < length; n++) out[n] += own[delay + n] + ahead[delay + n] + (n < tailLength ? this.tail[n] : 0);
    // the spill past this call's end; a call shorter than the spill passes the rest of the earlier spill on
    for (let n = 0; n < tailLength; n++) this.tail[n] = own[end + n] + (n + length < tailLength ? this.tail[n + length] : 0);
  }
}

/**
 * ddsp's filter design as factors (safe_ops.impulse_response_factors, line for line): the reversed causal
 * FIR of magnitudes m is sum_k m[k] rowScale[k] cos(2 pi (k index[j] mod size) / size) gain[j].
 */
export function noiseFilterDesign(nBands, windowSize = 257) {
  const size = 2 * (nBands - 1);
  const rowScale = new Float64Array(nBands).fill(2);
  rowScale[0] = 1;
  rowScale[nBands - 1] = 1;
  const window = windowSize <= 0 || windowSize > size ? size : windowSize;
  const period = window % 2 === 0 ? window : window - 1; // TF's "periodic" Hann is symmetric for odd lengths
  const hann = Array.from({ length: window }, (_, n) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / period));
  const half = Math.floor((window + 1) / 2);
  const padding = size - window;
  const zeroPhase = [...hann.slice(half), ...new Array(padding).fill(0), ...hann.slice(0, half)];
  const n = Array.from({ length: size }, (_, i) => i);
  const columns = padding > 0
    ? [...n.slice(size - (half - 1) + 1), ...n.slice(0, half + 1)]
    : [...n.slice(size / 2), ...n.slice(0, size / 2)];
  columns.reverse();
  return { rowScale, index: columns, gain: columns.map((c) => zeroPhase[c] / size), size };
}

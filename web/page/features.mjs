// Per-frame features of 16 kHz mono audio in the browser, the way `tonesweep prepare` computes
// them (trainers/data/features.py), and the fit to an instrument that `tonesweep transfer` applies
// (trainers/export/transfer.py fit_to_instrument). Pure functions of Float32Arrays: they run in a
// page and in Node alike, so tests can call them without a browser.
//
// f0: pitchy's McLeod pitch method (MIT, weight-free) on 1024-sample windows centred on each frame,
//     as prepare's pYIN uses 1024-sample frames with centre padding; a frame is voiced when pitchy's
//     clarity reaches VOICED_CLARITY and the pitch lies in the instrument's f0 range. Unvoiced
//     frames get f0 interpolated in log frequency between voiced neighbours (fill_unvoiced).
// loudness: ddsp.spectral_ops.compute_loudness (n_fft 512, periodic Hann, centre zero padding,
//     A-weighted power averaged over bins, dB floored at -80), with fft.js (pitchy's own FFT).
// rms: ddsp.spectral_ops.compute_rms_energy (512-sample frames, centre zero padding) in dB.

import FFT from 'fft.js';
import { PitchDetector } from 'pitchy';

export const SAMPLE_RATE = 16000;
export const DB_RANGE = 80;
export const PITCH_WINDOW = 1024;
export const LEVEL_WINDOW = 512;
export const VOICED_CLARITY = 0.9;
export const UNVOICED_ATTENUATION_DB = 20;
export const SILENCE_DB = -70;

/** Frames of a signal of n samples at frameRate: n * frameRate / sampleRate (prepare's count). */
export function frameCount(n, frameRate, sampleRate = SAMPLE_RATE) {
  return Math.floor((n * frameRate) / sampleRate);
}

/** The window of `size` samples centred on sample `centre`, zeros outside the signal. */
function centredWindow(audio, centre, size, out) {
  const start = centre - size / 2;
  out.fill(0);
  const from = Math.max(0, start);
  const to = Math.min(audio.length, start + size);
  if (to > from) out.set(audio.subarray(from, to), from - start);
  return out;
}

/**
 * Pitch per frame. Returns {f0Hz: Float32Array [T] (interpolated over unvoiced frames),
 * voiced: Uint8Array [T], clarity: Float32Array [T]}.
 */
export function trackPitch(audio, frameRate, { f0MinHz = 65.4, f0MaxHz = 2093.0 } = {}) {
  const hop = SAMPLE_RATE / frameRate;
  const T = frameCount(audio.length, frameRate);
  const detector = PitchDetector.forFloat32Array(PITCH_WINDOW);
  const window = new Float32Array(PITCH_WINDOW);
  const raw = new Float32Array(T);
  const voiced = new Uint8Array(T);
  const clarity = new Float32Array(T);
  for (let t = 0; t < T; t++) {
    const [pitch, c] = detector.findPitch(centredWindow(audio, t * hop, PITCH_WINDOW, window), SAMPLE_RATE);
    clarity[t] = c;
    raw[t] = pitch;
    voiced[t] = c >= VOICED_CLARITY && pitch >= f0MinHz && pitch <= f0MaxHz ? 1 : 0;
  }
  return { f0Hz: fillUnvoiced(raw, voiced), voiced, clarity };
}

/** f0 over unvoiced frames interpolated in log2 frequency, held at the ends; zeros if none voiced. */
export function fillUnvoiced(f0Hz, voiced) {
  const T = f0Hz.length;
  const out = new Float32Array(T);
  const idx = [];
  for (let t = 0; t < T; t++) if (voiced[t]) idx.push(t);
  if (!idx.length) return out;
  let k = 0;
  for (let t = 0; t < T; t++) {
    while (k + 1 < idx.length && idx[k + 1] <= t) k++;
    const a = idx[k];
    const b = idx[Math.min(k + 1, idx.length - 1)];
    if (t <= a || a === b) out[t] = f0Hz[t <= idx[0] ? idx[0] : a];
    else if (t >= b) out[t] = f0Hz[b];
    else {
      const w = (t - a) / (b - a);
      out[t] = 2 ** ((1 - w) * Math.log2(f0Hz[a]) + w * Math.log2(f0Hz[b]));
    }
  }
  return out;
}

/** librosa.A_weighting (dB, floored at -80) of the rfft bin frequencies of an n-point FFT. */
function aWeightingPower(nFft) {
  const c = [12194.217 ** 2, 20.598997 ** 2, 107.65265 ** 2, 737.86223 ** 2];
  const out = new Float64Array(nFft / 2 + 1);
  for (let k = 0; k < out.length; k++) {
    const f2 = ((k * SAMPLE_RATE) / nFft) ** 2;
    let db = 2.0 + 20.0 * (Math.log10(c[0]) + 2 * Math.log10(f2) - Math.log10(f2 + c[1]) - Math.log10(f2 + c[0])
      - 0.5 * Math.log10(f2 + c[2]) - 0.5 * Math.log10(f2 + c[3]));
    if (!(db >= -80)) db = -80; // f = 0 gives -Infinity
    out[k] = 10 ** (db / 10);
  }
  return out;
}

function powerToDb(power) {
  const floor = 10 ** (-DB_RANGE / 10);
  return Math.max(10 * Math.log10(Math.max(floor, power)), -DB_RANGE);
}

/** ddsp's A-weighted loudness in dB per frame: Float32Array [T]. */
export function loudnessDb(audio, frameRate) {
  const n = LEVEL_WINDOW;
  const hop = SAMPLE_RATE / frameRate;
  const T = frameCount(audio.length, frameRate);
  const fft = new FFT(n);
  const hann = new Float64Array(n).map((_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n)); // periodic
  const weight = aWeightingPower(n);
  const frame = new Float32Array(n);
  const input = new Float64Array(n);
  const spectrum = fft.createComplexArray();
  const out = new Float32Array(T);
  for (let t = 0; t < T; t++) {
    centredWindow(audio, t * hop, n, frame);
    for (let i = 0; i < n; i++) input[i] = frame[i] * hann[i];
    fft.realTransform(spectrum, input);
    let sum = 0;
    for (let k = 0; k <= n / 2; k++) {
      const re = spectrum[2 * k];
      const im = spectrum[2 * k + 1];
      sum += (re * re + im * im) * weight[k];
    }
    out[t] = powerToDb(sum / (n / 2 + 1));
  }
  return out;
}

/** ddsp's RMS energy in dB per frame: Float32Array [T]. */
export function rmsDb(audio, frameRate) {
  const n = LEVEL_WINDOW;
  const hop = SAMPLE_RATE / frameRate;
  const T = frameCount(audio.length, frameRate);
  const frame = new Float32Array(n);
  const out = new Float32Array(T);
  for (let t = 0; t < T; t++) {
    centredWindow(audio, t * hop, n, frame);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += frame[i] * frame[i];
    out[t] = powerToDb(sum / n);
  }
  return out;
}

function median(values) {
  const s = Float64Array.from(values).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** numpy's default (linear) percentile. */
function percentile(values, q) {
  const s = Float64Array.from(values).sort();
  const pos = ((s.length - 1) * q) / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/**
 * Octave-shift f0 and level-match the feature to the model card's dataset statistics, exactly as
 * `tonesweep transfer` does. Returns {f0Hz, featureDb, octaves, levelShiftDb}; throws when no
 * frame is voiced.
 */
/** `octaves`: a whole number of octaves to shift by, or 'auto' (the instrument's median note, as
 * `tonesweep transfer` does). */
export function fitToInstrument(f0Hz, featureDb, voiced, card, { octaves: chosen = 'auto' } = {}) {
  const scaling = card.input_scaling || {};
  const midi = [];
  const levels = [];
  for (let t = 0; t < f0Hz.length; t++) {
    if (voiced[t] && f0Hz[t] > 0) {
      midi.push(69 + 12 * Math.log2(f0Hz[t] / 440));
      levels.push(featureDb[t]);
    }
  }
  if (!midi.length) throw new Error('no pitched (voiced) sound found: sing or play a melody, or pick another file');
  const targetMidi = scaling.f0_midi?.p50;
  const auto = Number.isFinite(targetMidi) ? Math.round((targetMidi - median(midi)) / 12) : 0;
  const octaves = Number.isInteger(Number(chosen)) && chosen !== 'auto' && chosen !== '' ? Number(chosen) : auto;
  const targetP95 = scaling.feature_db?.p95;
  const shift = Number.isFinite(targetP95) ? targetP95 - percentile(levels, 95) : 0;
  const f0Out = new Float32Array(f0Hz.length);
  const levelOut = new Float32Array(f0Hz.length);
  for (let t = 0; t < f0Hz.length; t++) {
    f0Out[t] = f0Hz[t] * 2 ** octaves;
    const value = featureDb[t] + shift - (voiced[t] ? 0 : UNVOICED_ATTENUATION_DB);
    levelOut[t] = Math.min(0, Math.max(-80, value));
  }
  return { f0Hz: f0Out, featureDb: levelOut, octaves, levelShiftDb: Math.round(shift * 100) / 100 };
}

/** Everything the model needs from 16 kHz audio, for a model card. */
export function features(audio, card) {
  const range = {};
  if (card.features?.f0_min_hz) range.f0MinHz = card.features.f0_min_hz;
  if (card.features?.f0_max_hz) range.f0MaxHz = card.features.f0_max_hz;
  const pitch = trackPitch(audio, card.frame_rate, range);
  const level = card.feature === 'rms' ? rmsDb(audio, card.frame_rate) : loudnessDb(audio, card.frame_rate);
  return { ...pitch, featureDb: level };
}

/** Peak level in dBFS (-Infinity for all zeros). */
export function peakDb(audio) {
  let peak = 0;
  for (let i = 0; i < audio.length; i++) peak = Math.max(peak, Math.abs(audio[i]));
  return 20 * Math.log10(peak);
}

/** The gain (dB) that brings audio's active level (RMS over its loudest half-second blocks, those within
 * 30 dB of the loudest) to targetDb, lowered if the peak would pass -1 dBFS. So instruments whose models
 * come out at different levels play at one level. */
export function levelGainDb(audio, targetDb = -18, sampleRate = SAMPLE_RATE) {
  const block = Math.max(1, Math.round(sampleRate / 2));
  const levels = [];
  let peak = 0;
  for (let start = 0; start < audio.length; start += block) {
    let sum = 0;
    const end = Math.min(audio.length, start + block);
    for (let i = start; i < end; i++) { sum += audio[i] * audio[i]; peak = Math.max(peak, Math.abs(audio[i])); }
    levels.push(10 * Math.log10(sum / (end - start) + 1e-12));
  }
  const loudest = Math.max(...levels);
  const active = levels.filter((db) => db > loudest - 30);
  const power = active.reduce((acc, db) => acc + 10 ** (db / 10), 0) / active.length;
  const gain = targetDb - 10 * Math.log10(power + 1e-12);
  return Math.min(gain, -1 - 20 * Math.log10(peak + 1e-12));
}

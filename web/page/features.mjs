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
// Live mode's pitch window: a frame's pitch is known half a window after it, so the window is part of the
// live delay (js/live.mjs liveTiming); 32 ms still holds two periods of 65 Hz, the lowest note tracked
export const LIVE_PITCH_WINDOW = 512;
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

export const DEFAULT_F0_RANGE = { f0MinHz: 65.4, f0MaxHz: 2093.0 };

/** A pitch tracker for one frame at a time: (audio, centre) -> {pitch (Hz), clarity, voiced (0/1)} of the
 * `size` samples centred on sample `centre` (zeros outside audio). The whole-take tracker and the
 * page's live mode both use it (live with LIVE_PITCH_WINDOW). */
export function framePitch({ f0MinHz = DEFAULT_F0_RANGE.f0MinHz, f0MaxHz = DEFAULT_F0_RANGE.f0MaxHz } = {},
  size = PITCH_WINDOW) {
  const detector = PitchDetector.forFloat32Array(size);
  const window = new Float32Array(size);
  return (audio, centre) => {
    const [pitch, clarity] = detector.findPitch(centredWindow(audio, centre, size, window), SAMPLE_RATE);
    return { pitch, clarity, voiced: clarity >= VOICED_CLARITY && pitch >= f0MinHz && pitch <= f0MaxHz ? 1 : 0 };
  };
}

/**
 * Pitch per frame. Returns {f0Hz: Float32Array [T] (interpolated over unvoiced frames),
 * voiced: Uint8Array [T], clarity: Float32Array [T]}.
 */
export function trackPitch(audio, frameRate, range = {}) {
  const hop = SAMPLE_RATE / frameRate;
  const T = frameCount(audio.length, frameRate);
  const track = framePitch(range);
  const raw = new Float32Array(T);
  const voiced = new Uint8Array(T);
  const clarity = new Float32Array(T);
  for (let t = 0; t < T; t++) {
    const frame = track(audio, t * hop);
    [raw[t], clarity[t], voiced[t]] = [frame.pitch, frame.clarity, frame.voiced];
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

/** ddsp's A-weighted loudness of one frame: (audio, centre) -> dB of the LEVEL_WINDOW samples centred there. */
export function frameLoudness() {
  const n = LEVEL_WINDOW;
  const fft = new FFT(n);
  const hann = new Float64Array(n).map((_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n)); // periodic
  const weight = aWeightingPower(n);
  const frame = new Float32Array(n);
  const input = new Float64Array(n);
  const spectrum = fft.createComplexArray();
  return (audio, centre) => {
    centredWindow(audio, centre, n, frame);
    for (let i = 0; i < n; i++) input[i] = frame[i] * hann[i];
    fft.realTransform(spectrum, input);
    let sum = 0;
    for (let k = 0; k <= n / 2; k++) {
      const re = spectrum[2 * k];
      const im = spectrum[2 * k + 1];
      sum += (re * re + im * im) * weight[k];
    }
    return powerToDb(sum / (n / 2 + 1));
  };
}

/** ddsp's RMS energy of one frame: (audio, centre) -> dB of the LEVEL_WINDOW samples centred there. */
export function frameRms() {
  const n = LEVEL_WINDOW;
  const frame = new Float32Array(n);
  return (audio, centre) => {
    centredWindow(audio, centre, n, frame);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += frame[i] * frame[i];
    return powerToDb(sum / n);
  };
}

/** The level feature a model card names ('loudness' or 'rms'), one frame at a time. */
export function frameLevel(card) {
  return card.feature === 'rms' ? frameRms() : frameLoudness();
}

function perFrame(measure, audio, frameRate) {
  const hop = SAMPLE_RATE / frameRate;
  const out = new Float32Array(frameCount(audio.length, frameRate));
  for (let t = 0; t < out.length; t++) out[t] = measure(audio, t * hop);
  return out;
}

/** numpy's default (linear) percentile; the 50th is the median. */
function percentile(values, q) {
  return sortedPercentile(Float64Array.from(values).sort(), q);
}

/**
 * Octave-shift f0 and level-match the feature to the model card's dataset statistics, exactly as
 * `tonesweep transfer` does. Returns {f0Hz, featureDb, octaves, levelShiftDb}; throws when no
 * frame is voiced.
 */
/** `octaves`: a whole number of octaves to shift by, or 'auto' (the instrument's median note, as
 * `tonesweep transfer` does). */
export function fitToInstrument(f0Hz, featureDb, voiced, card, { octaves: chosen = 'auto' } = {}) {
  const midi = [];
  const levels = [];
  for (let t = 0; t < f0Hz.length; t++) {
    if (voiced[t] && f0Hz[t] > 0) {
      midi.push(69 + 12 * Math.log2(f0Hz[t] / 440));
      levels.push(featureDb[t]);
    }
  }
  if (!midi.length) throw new Error('no pitched (voiced) sound found: sing or play a melody, or pick another file');
  const octaves = octaveShift(card, percentile(midi, 50), chosen);
  const shift = levelShift(card, percentile(levels, 95));
  const f0Out = new Float32Array(f0Hz.length);
  const levelOut = new Float32Array(f0Hz.length);
  for (let t = 0; t < f0Hz.length; t++) {
    f0Out[t] = f0Hz[t] * 2 ** octaves;
    levelOut[t] = fittedLevel(featureDb[t], shift, voiced[t]);
  }
  return { f0Hz: f0Out, featureDb: levelOut, octaves, levelShiftDb: Math.round(shift * 100) / 100 };
}

/** Octaves to shift by: the chosen whole number, or ('auto') the one bringing the input's median note
 * nearest the instrument's (the card's f0_midi p50). */
function octaveShift(card, medianMidi, chosen) {
  if (Number.isInteger(Number(chosen)) && chosen !== 'auto' && chosen !== '') return Number(chosen);
  const targetMidi = card.input_scaling?.f0_midi?.p50;
  return Number.isFinite(targetMidi) && Number.isFinite(medianMidi) ? Math.round((targetMidi - medianMidi) / 12) : 0;
}

/** dB to add to the level feature: the instrument's 95th percentile minus the input's. */
function levelShift(card, inputP95) {
  const targetP95 = card.input_scaling?.feature_db?.p95;
  return Number.isFinite(targetP95) && Number.isFinite(inputP95) ? targetP95 - inputP95 : 0;
}

function fittedLevel(db, shift, voiced) {
  return Math.min(0, Math.max(-DB_RANGE, db + shift - (voiced ? 0 : UNVOICED_ATTENUATION_DB)));
}

/**
 * The features of a stream, frame by frame as its samples arrive (the page's live mode), fitted to the
 * instrument as fitToInstrument fits a take, but from what has been heard so far: the octave ('auto')
 * from the median voiced note so far, the level from the 95th percentile so far (of the last
 * LIVE_MEMORY_S seconds of voiced frames, so a long session costs no more per frame). A frame is complete
 * once the windows centred on it are (LIVE_REACH samples after it: the pitch window is LIVE_PITCH_WINDOW,
 * half a take's, to shorten the delay); unvoiced frames keep the last voiced pitch (a take's are
 * interpolated to the next one, which a stream has not heard yet).
 */
export const LIVE_MEMORY_S = 30;
export const LIVE_REACH = Math.max(LIVE_PITCH_WINDOW, LEVEL_WINDOW) / 2;

export class LiveFeatures {
  constructor(card, { octaves = 'auto' } = {}) {
    // midi, levels: sorted; heard: the same, in arrival order
    Object.assign(this, { card, chosen: octaves, hop: SAMPLE_RATE / card.frame_rate,
      pitch: framePitch(f0Range(card), LIVE_PITCH_WINDOW), level: frameLevel(card), buffer: new Float32Array(0),
      offset: 0, received: 0, frames: 0, midi: [], levels: [], heard: [], heldHz: NaN });
    const target = card.input_scaling?.f0_midi?.p50;
    this.restingHz = Number.isFinite(target) ? 440 * 2 ** ((target - 69) / 12) : 220; // before any voiced frame
  }

  /** Append samples; returns the frames they complete: [{f0Hz, voiced, featureDb, fittedF0Hz, fittedDb, octaves}]. */
  push(samples) {
    const keep = Math.min(this.buffer.length, 2 * LIVE_REACH + this.hop);
    const joined = new Float32Array(keep + samples.length);
    joined.set(this.buffer.subarray(this.buffer.length - keep));
    joined.set(samples, keep);
    this.offset += this.buffer.length - keep;
    this.buffer = joined;
    this.received += samples.length;
    const out = [];
    while (this.frames * this.hop + LIVE_REACH <= this.received) out.push(this.frame(this.frames++));
    return out;
  }

  frame(t) {
    const centre = t * this.hop - this.offset; // samples before the stream are zeros, as prepare's padding
    const { pitch, voiced } = this.pitch(this.buffer, centre);
    const db = this.level(this.buffer, centre);
    if (voiced) {
      this.heldHz = pitch;
      this.remember(69 + 12 * Math.log2(pitch / 440), db);
    }
    const octaves = octaveShift(this.card, this.midi.length ? sortedPercentile(this.midi, 50) : NaN, this.chosen);
    const shift = levelShift(this.card, this.levels.length ? sortedPercentile(this.levels, 95) : NaN);
    const f0Hz = voiced ? pitch : this.heldHz;
    return { f0Hz, voiced, featureDb: db, octaves,
      fittedF0Hz: Number.isFinite(f0Hz) ? f0Hz * 2 ** octaves : this.restingHz, fittedDb: fittedLevel(db, shift, voiced) };
  }

  /** A voiced frame's note and level into the running statistics, the oldest out past LIVE_MEMORY_S. */
  remember(midi, db) {
    insertSorted(this.midi, midi);
    insertSorted(this.levels, db);
    this.heard.push([midi, db]);
    if (this.heard.length > LIVE_MEMORY_S * this.card.frame_rate) {
      const [oldMidi, oldDb] = this.heard.shift();
      this.midi.splice(sortedIndex(this.midi, oldMidi), 1);
      this.levels.splice(sortedIndex(this.levels, oldDb), 1);
    }
  }
}

/** The first index of a sorted array whose value is not below x. */
function sortedIndex(values, x) {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (values[mid] < x) lo = mid + 1; else hi = mid; }
  return lo;
}

function insertSorted(values, x) {
  values.splice(sortedIndex(values, x), 0, x);
}

/** numpy's linear percentile of an already sorted array. */
function sortedPercentile(sorted, q) {
  const pos = ((sorted.length - 1) * q) / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** The f0 range a model card's features were tracked in (prepare's --f0-min/--f0-max). */
export function f0Range(card) {
  const range = {};
  if (card.features?.f0_min_hz) range.f0MinHz = card.features.f0_min_hz;
  if (card.features?.f0_max_hz) range.f0MaxHz = card.features.f0_max_hz;
  return range;
}

/** Everything the model needs from 16 kHz audio, for a model card. */
export function features(audio, card) {
  const pitch = trackPitch(audio, card.frame_rate, f0Range(card));
  return { ...pitch, featureDb: perFrame(frameLevel(card), audio, card.frame_rate) };
}

/** Peak level in dBFS (-Infinity for all zeros). */
export function peakDb(audio) {
  let peak = 0;
  for (let i = 0; i < audio.length; i++) peak = Math.max(peak, Math.abs(audio[i]));
  return 20 * Math.log10(peak);
}

/**
 * levelGainDb for a stream (live mode): each block brought toward targetDb over the active level heard so
 * far (blocks within 30 dB of the loudest, their power averaged over about two seconds), plus the
 * listener's extraDb, never past -1 dBFS; the gain glides across a block, so it never steps.
 */
export class LiveLevel {
  constructor(extraDb = 0, targetDb = -18) {
    Object.assign(this, { extraDb, targetDb, loudestDb: -Infinity, activePower: 0, weight: 0, gain: 1, gainDb: 0 });
  }

  apply(audio) {
    let sum = 0;
    for (let i = 0; i < audio.length; i++) sum += audio[i] * audio[i];
    const db = 10 * Math.log10(sum / Math.max(1, audio.length) + 1e-12);
    this.loudestDb = Math.max(this.loudestDb, db);
    if (db > this.loudestDb - 30) {
      const keep = Math.exp(-audio.length / (2 * SAMPLE_RATE)); // about two seconds of memory
      this.activePower = keep * this.activePower + (1 - keep) * 10 ** (db / 10);
      this.weight = keep * this.weight + (1 - keep);
    }
    const activeDb = this.weight ? 10 * Math.log10(this.activePower / this.weight + 1e-12) : db;
    let peak = 0;
    for (let i = 0; i < audio.length; i++) peak = Math.max(peak, Math.abs(audio[i]));
    const limit = 10 ** (-1 / 20) / (peak + 1e-12);
    const target = Math.min(10 ** ((this.targetDb - activeDb + this.extraDb) / 20), limit);
    const out = new Float32Array(audio.length);
    for (let i = 0; i < audio.length; i++) {
      out[i] = audio[i] * Math.min(limit, this.gain + ((target - this.gain) * (i + 1)) / audio.length);
    }
    this.gain = target;
    this.gainDb = Math.round(200 * Math.log10(target)) / 10;
    return out;
  }
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

// Run trainers/export/js/synth.mjs over a whole signal, call by call, from controls written by Python.
//
//   node synth_check.mjs DIR     DIR/spec.json: {layout, synth, frames, block (frames per call; default the
//                                layout's)}; DIR/<name>.f64 little-endian float64:
//                                f0 [T+1], amplitudes [T+1], distribution [(T+1)*K], magnitudes [(T+La)*N],
//                                noise [(T+La)*hop]. Writes DIR/audio.f64 [T*hop].
import fs from 'node:fs';
import path from 'node:path';
import { Synth } from '../../../trainers/export/js/synth.mjs';

const dir = process.argv[2];
const spec = JSON.parse(fs.readFileSync(path.join(dir, 'spec.json'), 'utf8'));
const read = (name) => {
  const buf = fs.readFileSync(path.join(dir, `${name}.f64`));
  return new Float64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8);
};
const [f0, amplitudes, distribution, magnitudes, noise] = ['f0', 'amplitudes', 'distribution', 'magnitudes', 'noise'].map(read);
const { hop, frames_per_call: F, lookahead: La, n_harmonics: K, n_noise_bands: N } = spec.layout;
const synth = new Synth(spec.layout, spec.synth);
const B = spec.block ?? F;
const audio = new Float64Array(spec.frames * hop);
for (let first = 0; first < spec.frames; first += B) {
  const out = synth.render({
    f0: f0.subarray(first, first + B + 1), amplitudes: amplitudes.subarray(first, first + B + 1),
    distribution: distribution.subarray(first * K, (first + B + 1) * K),
    magnitudes: magnitudes.subarray(first * N, (first + B + La) * N),
    noise: noise.subarray(first * hop, (first + B + La) * hop),
  }, B);
  audio.set(out.subarray(0, Math.min(B, spec.frames - first) * hop), first * hop);
}
fs.writeFileSync(path.join(dir, 'audio.f64'), Buffer.from(audio.buffer));

// Node parity runner: load a TF.js graph model from disk, run it on the wasm (or cpu) backend
// with inputs written by Python, write the outputs back for comparison.
//
//   node node_parity.mjs --model TFJS_DIR --io IO_DIR [--backend wasm|cpu] [--repeat N]
//       [--signal LAYOUT.json [--synth SYNTH.json [--live FRAMES]]]
//
// IO_DIR/inputs.json: {"name": {"shape": [...], "file": "name.f32"}} (little-endian float32).
// Writes IO_DIR/outputs.json (same layout, files out_<name>.f32) with "timings_ms", "backend" and
// "kernels" (the TF.js kernels the first run called, or for a signal one call of every output, from
// tf.profile: what the page's runtime must hold).
// With --signal (the model card's "layout" as JSON), the inputs are a whole signal (f0_hz [T],
// feature_db [T], noise [T*hop]) rendered chunk by chunk with renderSignal; the output is audio. With
// --synth (the card's "synth" as JSON) the graph runs its decoder only and synth.mjs synthesizes; with
// --live, FRAMES at a time as the page's live mode renders (live.mjs; outputs audio and block_ms).
// No tfjs-node: the model files are read with fs and handed to tf.loadGraphModel as an IOHandler.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { renderLiveSignal } from './live.mjs';
import { render, renderSignal } from './runner.mjs';

function parseArgs(argv) {
  const args = { backend: 'wasm', repeat: 1, signal: null, synth: null, live: null };
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!args.model || !args.io) throw new Error('usage: --model TFJS_DIR --io IO_DIR [--backend wasm|cpu] [--repeat N] [--signal LAYOUT.json]');
  args.repeat = Number(args.repeat);
  return args;
}

function fileHandler(dir) {
  return {
    async load() {
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const weightSpecs = [];
      const buffers = [];
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: json.modelTopology, format: json.format, generatedBy: json.generatedBy,
        convertedBy: json.convertedBy, signature: json.signature, weightSpecs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}

function readTensors(dir) {
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'inputs.json'), 'utf8'));
  const out = {};
  for (const [name, spec] of Object.entries(index)) {
    const buf = fs.readFileSync(path.join(dir, spec.file));
    out[name] = { shape: spec.shape, data: new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4) };
  }
  return out;
}

/** Zeros for every input of the graph's signature, keyed as runner.mjs's render takes them. */
function zeroInputs(model) {
  return Object.fromEntries(Object.entries(model.signature.inputs).map(([key, spec]) => {
    const shape = spec.tensorShape.dim.map((d) => Number(d.size));
    return [key.replace(/:0$/, ''), { shape, data: new Float32Array(shape.reduce((n, d) => n * d, 1)) }];
  }));
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.backend === 'wasm') {
    // the wasm binaries the page ships (build_runtime.mjs: only tonesweep's kernels), so that a kernel they
    // lack fails here, at export, not in a user's browser; the npm package's own until `make install` built them
    const require = createRequire(import.meta.url);
    const shipped = path.join(path.dirname(require.resolve('@tensorflow/tfjs/package.json')), '../../.tonesweep');
    const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
    setWasmPaths((fs.existsSync(path.join(shipped, 'tfjs-backend-wasm-simd.wasm')) ? shipped : dist) + path.sep);
  }
  if (!(await tf.setBackend(args.backend))) throw new Error(`backend ${args.backend} unavailable`);
  await tf.ready();
  const model = await tf.loadGraphModel(fileHandler(args.model));
  const inputs = readTensors(args.io);
  const timings = [];
  let result;
  let kernels = [];
  const once = async () => {
    if (args.signal && args.live) {
      const layout = JSON.parse(fs.readFileSync(args.signal, 'utf8'));
      const synth = JSON.parse(fs.readFileSync(args.synth, 'utf8'));
      const start = performance.now();
      const { audio, blockMs } = await renderLiveSignal(tf, model, layout, synth, inputs.f0_hz.data, inputs.feature_db.data,
        inputs.noise.data, Number(args.live));
      result = { outputs: { audio: { shape: [audio.length], data: audio },
        block_ms: { shape: [blockMs.length], data: Float32Array.from(blockMs) } }, ms: performance.now() - start };
    } else if (args.signal) {
      const layout = JSON.parse(fs.readFileSync(args.signal, 'utf8'));
      const start = performance.now();
      const audio = await renderSignal(tf, model, layout, inputs.f0_hz.data, inputs.feature_db.data, inputs.noise.data,
        { synth: args.synth ? JSON.parse(fs.readFileSync(args.synth, 'utf8')) : undefined });
      result = { outputs: { audio: { shape: [audio.length], data: audio } }, ms: performance.now() - start };
    } else {
      result = await render(tf, model, inputs);
    }
  };
  // The kernels the graph runs, from a profile: of one call on zeros for a signal (profiling every call of a
  // long one lists each kernel call, and tf.profile's summary overflows the stack past ~100,000), else of the run
  if (args.signal) kernels = (await tf.profile(() => render(tf, model, zeroInputs(model)))).kernelNames;
  for (let i = 0; i < Math.max(1, args.repeat); i++) {
    if (i === 0 && !args.signal) kernels = (await tf.profile(once)).kernelNames; // the first (warm-up) run
    else await once();
    timings.push(result.ms);
  }
  const index = { backend: tf.getBackend(), timings_ms: timings, kernels: [...new Set(kernels)].sort(), outputs: {} };
  for (const [name, t] of Object.entries(result.outputs)) {
    const file = `out_${name}.f32`;
    fs.writeFileSync(path.join(args.io, file), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    index.outputs[name] = { shape: t.shape, file };
  }
  fs.writeFileSync(path.join(args.io, 'outputs.json'), JSON.stringify(index));
}

main().catch((err) => { console.error(`node_parity: ${err.stack || err}`); process.exit(1); });

// Build the page's TF.js runtime: only the kernels and converter ops tonesweep's exported graphs use
// (runtime.json), with TF.js's own custom-module tool (tfjs-custom-module) and esbuild, as one minified
// ES module, and the wasm backend's binaries with only those kernels (binaryen). `make install` runs it
// after `npm install`; the page's render worker imports the result (web/assets.py copies it into
// page/vendor/) and export's Node checks run the same binaries. Stock tf.min.js is 1.47 MB and the SIMD
// binary 425 KB: this is the part of them these graphs need.
//
// The wasm backend's threaded build is left out (its script is replaced by a stub and the runtime says
// threads are unsupported, so TF.js never asks for it): it needs a cross-origin-isolated page and was no
// faster for models this small (bench/README.md).
//
//   node trainers/export/js/build_runtime.mjs [--out node_modules/.tonesweep/tf-runtime.min.mjs]

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import binaryen from 'binaryen';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const require = createRequire(path.join(root, 'package.json'));
const args = { out: path.join(root, 'node_modules/.tonesweep/tf-runtime.min.mjs') };
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];

/** TF.js's documented aliases for a custom module, exact names only (esbuild's `alias` matches prefixes). */
function customModules(generated) {
  const exact = {
    '@tensorflow/tfjs': 'custom_tfjs.js',
    '@tensorflow/tfjs-core': 'custom_tfjs_core.js',
    '@tensorflow/tfjs-core/dist/ops/ops_for_converter': 'custom_ops_for_converter.js',
  };
  return {
    name: 'tfjs-custom-module',
    setup(build) {
      build.onResolve({ filter: /^@tensorflow\/tfjs(-core(\/dist\/ops\/ops_for_converter)?)?$/ },
        ({ path: name }) => ({ path: path.join(generated, exact[name]) }));
    },
  };
}

/** The threaded wasm build's script and worker, as stubs (never loaded: the entry turns threads off). */
function withoutThreads() {
  return {
    name: 'tonesweep-without-threads',
    setup(build) {
      build.onResolve({ filter: /tfjs-backend-wasm-threaded-simd(\.worker)?\.js$/ },
        ({ path: name }) => ({ path: name, namespace: 'tonesweep-stub' }));
      build.onLoad({ filter: /.*/, namespace: 'tonesweep-stub' }, ({ path: name }) => ({
        contents: name.endsWith('.worker.js') ? "export const wasmWorkerContents = '';"
          : "export default function () { throw new Error('the threaded wasm backend is not in this runtime'); }",
      }));
    },
  };
}

/** The converter's op definitions (op_list/*.js, every TensorFlow op TF.js maps) cut to the graph ops the
 * runtime serves: a graph with any other op is refused at export (trainers/export/runtime.py). */
function onlyGraphOps(graphOps) {
  const keep = new Set(graphOps);
  return {
    name: 'tonesweep-graph-ops',
    setup(build) {
      const lists = /tfjs-converter[\\/]dist[\\/]operations[\\/]op_list[\\/][a-z_]+\.js$/;
      build.onLoad({ filter: lists }, async ({ path: file }) => {
        const { json } = await import(pathToFileURL(file).href);
        return { contents: `export const json = ${JSON.stringify(json.filter((op) => keep.has(op.tfOpName)))};` };
      });
    },
  };
}

/** The wasm functions the runtime's kernels call: each kernel's own name and the names its script passes to
 * cwrap (Select calls 'SelectV2'). */
function wasmKernelNames(kernels) {
  const dir = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist/kernels');
  const names = new Set(kernels);
  for (const kernel of kernels) {
    const file = path.join(dir, `${kernel}.js`);
    if (!fs.existsSync(file)) continue;
    const source = fs.readFileSync(file, 'utf8');
    for (const [, name] of source.matchAll(/cwrap\(\s*['"]([A-Za-z0-9_]+)['"]/g)) names.add(name);
  }
  return names;
}

/** A wasm backend binary without the kernels the runtime does not register: their exports removed, then
 * everything no longer reachable (binaryen's remove-unused-module-elements). Other exports (init, malloc,
 * memory, ...) stay. Returns the new binary's size. */
function trimWasm(source, target, keep) {
  const module = binaryen.readBinary(fs.readFileSync(source));
  try {
    for (let i = module.getNumExports() - 1; i >= 0; i--) {
      const { name, kind } = binaryen.getExportInfo(module.getExportByIndex(i));
      const isKernel = kind === binaryen.ExternalFunction && /^(_?[A-Z])/.test(name);
      if (isKernel && !keep.has(name)) module.removeExport(name);
    }
    module.runPasses(['remove-unused-module-elements']);
    const binary = module.emitBinary();
    fs.writeFileSync(target, binary);
    return binary.length;
  } finally {
    module.dispose();
  }
}

// What the page's render worker and the renderers it imports (runner.mjs, live.mjs) call of TF.js; the rest
// of its API is left out of the runtime
const RUNTIME_API = ['dispose', 'engine', 'env', 'getBackend', 'loadGraphModel', 'ready', 'setBackend', 'tensor'];
// SIMD where the browser has it, the plain build elsewhere (TF.js picks; the threaded build is left out)
const WASM_BINARIES = ['tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm.wasm'];
const runtime = JSON.parse(fs.readFileSync(path.join(here, 'runtime.json'), 'utf8'));
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tonesweep-runtime-'));
try {
  // The tool takes converter ops from model.json files: one listing every op our graphs may contain.
  const ops = path.join(work, 'ops-model.json');
  fs.writeFileSync(ops, JSON.stringify({ modelTopology: { node: runtime.graph_ops.map((op, i) => ({ name: `n${i}`, op })) } }));
  const config = path.join(work, 'config.json');
  const generated = path.join(work, 'custom');
  fs.writeFileSync(config, JSON.stringify({ kernels: runtime.kernels, backends: runtime.backends, models: [ops],
    outputPath: generated, forwardModeOnly: true }));
  execFileSync(process.execPath, [require.resolve('@tensorflow/tfjs/dist/tools/custom_module/cli.js'), '--config', config],
    { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  const entry = path.join(work, 'entry.mjs');
  fs.writeFileSync(entry, `export { ${RUNTIME_API.join(', ')} } from '@tensorflow/tfjs';\n`
    + "export { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';\n"
    + "import { env } from '@tensorflow/tfjs';\nenv().set('WASM_HAS_MULTITHREAD_SUPPORT', false);\n");
  fs.mkdirSync(path.dirname(args.out), { recursive: true });
  const built = await esbuild.build({
    entryPoints: [entry], bundle: true, minify: true, format: 'esm', platform: 'browser', outfile: args.out,
    absWorkingDir: root, nodePaths: [path.join(root, 'node_modules')], logLevel: 'error', legalComments: 'eof',
    plugins: [customModules(generated), withoutThreads(), onlyGraphOps(runtime.graph_ops)],
    metafile: Boolean(process.env.TONESWEEP_RUNTIME_META),
  });
  if (built.metafile) fs.writeFileSync(process.env.TONESWEEP_RUNTIME_META, JSON.stringify(built.metafile));
  const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  const keep = wasmKernelNames(runtime.kernels);
  const sizes = WASM_BINARIES.map((name) => trimWasm(path.join(dist, name), path.join(path.dirname(args.out), name),
    keep));
  console.log(`build_runtime: ${path.relative(root, args.out)} (${fs.statSync(args.out).size.toLocaleString('en')} bytes, `
    + `${runtime.kernels.length} kernels on ${runtime.backends.join(' + ')}); wasm binaries beside it `
    + `(${sizes.map((n) => n.toLocaleString('en')).join(' and ')} bytes)`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

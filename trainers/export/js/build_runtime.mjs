// Build the page's TF.js runtime: only the kernels and converter ops tonesweep's exported graphs use
// (runtime.json), with TF.js's own custom-module tool (tfjs-custom-module) and esbuild, as one minified
// ES module. `make install` runs it after `npm install`; the page's render worker imports the result
// (web/assets.py copies it into page/vendor/). Stock tf.min.js is 1.47 MB: this is the part of it
// these graphs need.
//
//   node trainers/export/js/build_runtime.mjs [--out node_modules/.tonesweep/tf-runtime.min.mjs]

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
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
  fs.writeFileSync(entry, "export * from '@tensorflow/tfjs';\nexport { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';\n");
  fs.mkdirSync(path.dirname(args.out), { recursive: true });
  const built = await esbuild.build({
    entryPoints: [entry], bundle: true, minify: true, format: 'esm', platform: 'browser', outfile: args.out,
    absWorkingDir: root, nodePaths: [path.join(root, 'node_modules')], logLevel: 'error', legalComments: 'none',
    plugins: [customModules(generated)], metafile: Boolean(process.env.TONESWEEP_RUNTIME_META),
  });
  if (built.metafile) fs.writeFileSync(process.env.TONESWEEP_RUNTIME_META, JSON.stringify(built.metafile));
  console.log(`build_runtime: ${path.relative(root, args.out)} (${fs.statSync(args.out).size.toLocaleString('en')} bytes, `
    + `${runtime.kernels.length} kernels on ${runtime.backends.join(' + ')})`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

// Minify the page's JavaScript for shipping (web/assets.py page_files): esbuild's transform, file by file
// (no bundling: the modules keep their imports and names on disk), license comments kept.
//
//   node web/minify.mjs < {"name": "source", ...} > {"name": "minified", ...}

import * as esbuild from 'esbuild';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const sources = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const out = {};
for (const [name, code] of Object.entries(sources)) {
  out[name] = (await esbuild.transform(code, { loader: 'js', format: 'esm', minify: true, legalComments: 'inline',
    target: 'es2020', sourcefile: name })).code;
}
process.stdout.write(JSON.stringify(out));

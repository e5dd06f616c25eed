// Run one call of an exported tonesweep graph model with TF.js (Node or browser).
//
// The converted model's signature maps each named input/output to a graph node
// ("f0_hz:0", "Identity_2:0", ...); outputs are fetched by those node names, in a fixed
// order, and returned under their signature keys (audio, next_phase, ...), because the
// graph's Identity_k numbering follows sorted keys, not the order they were defined in.

/** Signature key -> graph node name, for inputs and outputs. */
export function signatureNames(model) {
  const strip = (name) => name.replace(/:0$/, '');
  const map = (entries) => Object.fromEntries(
    Object.entries(entries).map(([key, spec]) => [strip(key), strip(spec.name)]));
  return { inputs: map(model.signature.inputs), outputs: map(model.signature.outputs) };
}

/**
 * One call. inputs: {name: {shape: number[], data: Float32Array}} keyed like the signature.
 * Returns {outputs: {name: {shape, data}}, ms: wall time of executeAsync + download}.
 */
export async function render(tf, model, inputs) {
  const names = signatureNames(model);
  const feeds = {};
  for (const [key, node] of Object.entries(names.inputs)) {
    if (!(key in inputs)) throw new Error(`missing input ${key}`);
    feeds[node] = tf.tensor(inputs[key].data, inputs[key].shape, 'float32');
  }
  const keys = Object.keys(names.outputs).sort();
  const start = performance.now();
  // executeAsync: the GRU is a while loop, which execute() refuses.
  const tensors = await model.executeAsync(feeds, keys.map((k) => names.outputs[k]));
  const list = Array.isArray(tensors) ? tensors : [tensors];
  const outputs = {};
  for (let i = 0; i < keys.length; i++) {
    outputs[keys[i]] = { shape: list[i].shape, data: await list[i].data() };
  }
  const ms = performance.now() - start;
  tf.dispose([...Object.values(feeds), ...list]);
  return { outputs, ms };
}

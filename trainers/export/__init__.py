"""Export a trained model (decoder + synthesizer) to a SavedModel and a TF.js bundle, and render with it.

Chain (docs/architecture.md §5): ``results.champion.resolve_trial`` (MLflow side) -> ``common.trial.ResolvedTrial`` -> ``trainers.model.trained.load_trained`` ->
``graph.ExportedSynth`` (built from ``safe_ops``) -> SavedModel -> ``tfjs.convert`` -> parity checks
(training graph, Node + wasm) -> ``model-card.json``. ``transfer.BundleRenderer`` renders any length
from a bundle. Submodules are imported explicitly; nothing heavy is imported here.
"""

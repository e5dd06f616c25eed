"""Results in MLflow and what is chosen from them; no Ray.

    layout     names of the MLflow layout, the default store
    tracking   the driver-side tracking of a sweep (experiments, parent and trial runs), URI checks
    table      runs -> a table of trial x precision candidates
    pareto     the front, non-dominated ranks, crowding, hypervolume (pure numpy)
    criteria   what "acceptable" means (one rule for the progress line, the selector and export)
    select     the smallest acceptable candidate
    plot       the size-vs-quality plot
    registry   the champion in the model registry
    report     `tonesweep pareto`: table, front, selection, plot, registry
    champion   `tonesweep export`'s MLflow side: which trial, which precision, its files
    synthetic  synthetic sweeps for tests and benchmarks
"""

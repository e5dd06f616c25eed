"""Search algorithms: which trial to run next, and which to stop early.

    base                  ``TrialSearcher``: the Ray Tune ``Searcher`` bookkeeping every engine shares
    kerastuner_searcher   KerasTuner oracles on ``val_loss`` (``random``, ``bayesian``)
    optuna_searcher       Optuna's multi-objective samplers over (model bytes, val_loss) (``nsga2``, ``motpe``, ``nsga3``)
    moasha                multi-objective ASHA, a Ray Tune ``TrialScheduler``
    ledger                trials that ended after Ray's last snapshot (the budget a resumed searcher counts)

Only names live here, so the CLI reads its choices without importing Ray or an engine.
"""

KERASTUNER_ALGORITHMS = ("random", "bayesian")   # suggestions on val_loss
OPTUNA_ALGORITHMS = ("nsga2", "motpe", "nsga3")   # suggestions over (model bytes, val_loss)
ALGORITHMS = KERASTUNER_ALGORITHMS + OPTUNA_ALGORITHMS
SCHEDULERS = ("moasha", "asha", "none")           # multi-objective ASHA, ASHA on val_loss, run every trial out
DEFAULT_ALGORITHM, DEFAULT_SCHEDULER = "random", "moasha"

"""Search algorithms: which trial to run next, and which to stop early.

    base                  ``TrialSearcher``: the Ray Tune ``Searcher`` bookkeeping every engine shares
    kerastuner_searcher   KerasTuner oracles on ``val_loss`` (``random``, ``bayesian``)
    optuna_searcher       Optuna's multi-objective samplers over (OBJECTIVE_SIZE, val_loss) (``nsga2``, ``motpe``, ``nsga3``)
    moasha                multi-objective ASHA, a Ray Tune ``TrialScheduler``
    ledger                trials that ended after Ray's last snapshot (the budget a resumed searcher counts)

Only names live here, so the CLI reads its choices without importing Ray or an engine.
"""

KERASTUNER_ALGORITHMS = ("random", "bayesian")   # suggestions on val_loss
OPTUNA_ALGORITHMS = ("nsga2", "motpe", "nsga3")   # suggestions over (OBJECTIVE_SIZE, val_loss)
ALGORITHMS = KERASTUNER_ALGORITHMS + OPTUNA_ALGORITHMS
SCHEDULERS = ("moasha", "asha", "none")           # multi-objective ASHA, ASHA on val_loss, run every trial out
DEFAULT_ALGORITHM, DEFAULT_SCHEDULER = "random", "moasha"

# The search's size objective (MO-ASHA's rungs, the multi-objective samplers): the bundle's bytes at its
# smallest precision, uint8, a key of the size report (trainers.model.size, known before training) that
# search.trainable reports with every result. The front the selector chooses from starts there (every demo
# winner shipped at uint8); float32 bytes rank architectures otherwise (the JSON topology weighs the same at
# every precision, the weights a quarter), so rungs judged on them stopped models whose uint8 bundle was the
# smallest acceptable one (bench/README.md, "The size MO-ASHA judges").
OBJECTIVE_SIZE = "bytes_uint8"


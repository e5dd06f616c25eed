"""A sweep on Ray Tune: one experiment per instrument, its trials tracked in MLflow.

    settings      ``SweepSettings`` and every check that needs no Ray (``preflight``); light
    place         where a sweep keeps its files: a folder or an object-store prefix; the sweep file
    tuner         Ray Tune assembly: trainable, searcher, scheduler, run config, worker environment
    sweep         the orchestration loop (``run_sweep``, ``InstrumentSweep``)
    summary       what a sweep reports when it ends
    interrupts    Ctrl-C and SIGTERM: stop as Ray stops, say how to resume
    trainable     one trial on a worker (``run_trial``; ``execute_trial`` without Ray)
    trial_folder  a trial's folder and dataset on the node it runs on
    callbacks     thin Ray callbacks: MLflow, progress, object-store sync
    progress      the status line of an instrument (plain Python)
    algorithms/   searchers (one base, one adapter per engine), multi-objective ASHA, the ledger
"""

"""The MLflow servers tonesweep runs (`tonesweep ui`, `tonesweep tracking-server`), apart from the
tracking client in ``results`` as MLflow's own ``server/`` is apart from ``tracking/``.

    mlflow_server   the server commands, their checks and links, the serve loop
    postgres        the PostgreSQL `tracking-server` runs itself
    processes       child process groups: start, forward output, wait until ready, stop leaving nothing
"""

"""Searches replayed on recorded trials: how a search strategy would have done, without training.

    pool       the recorded pool of trials (one reader and writer of its file format)
    simulate   simulated workers running a strategy's trials from a pool, the real schedulers and samplers
               deciding in arrival order; hypervolume on the pool's fixed box

What bench/search_efficiency.py decides the default search with (bench/README.md), and what a team can
replay its own recorded sweeps with (bench/record_pool.py records one). Nothing here trains or starts Ray.
"""

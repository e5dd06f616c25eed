"""Which search decides the default: hypervolume bought per trial-step, replayed on recorded pools.

    .venv/bin/python bench/search_efficiency.py [--pools bench/data/pool-*.json.gz] [--trials 30] [--seeds 10] [--first-seed 0]
        [--studies strategies,schedule,warm,scale,budget,demo] [--scale-trials 1000] [--idle-multiples 1,4]
        [--startups measured|recorded]
        [--plot bench/figures/search-efficiency.png]

The pools (``bench/record_pool.py``, format in ``search/replay/pool.py``) hold hundreds of trials recorded to the
end; every study replays them (``search/replay/simulate.py``: simulated workers, the real schedulers and samplers
deciding), so the whole benchmark runs in minutes without training. Studies:

strategies  every strategy below, ``--seeds`` seeds of ``--trials`` trials each on 2 workers, at the
            sweep's default MO-ASHA settings (first rung at one of the pool's reports, eta 4, the rung's
            front kept; ``search.settings``); each seed's hypervolume divided by the reference's (random
            search, every trial to the end) with the same seed.
schedule    random + MO-ASHA (keeping the front) over a grid of grace periods and reduction factors. The
            setting is chosen on seeds 0..S-1 and reported on seeds S..2S-1 (fresh random draws), so the
            reported numbers are not the ones it was tuned on. The pick is printed; warm and scale study
            the sweep's defaults (``search.settings``), what a user gets.
warm        each instrument's search seeded with the front of the other instrument's search of the
            same seed (``tonesweep sweep --warm-start``), against the same search cold, at equal
            trial-steps.
scale       the default on 2, 8, 32 and 128 workers over ``--scale-trials`` trials drawn from the pool
            (each taking its recorded time plus ``--overhead-s``): wall time, worker utilisation and
            hypervolume at equal trial-steps and at equal wall time; where 128 workers idle.
budget      128 workers under a wall-clock budget (``tonesweep sweep --time-budget``) instead of a trial
            count: utilisation, the share of it in trials the budget stopped, hypervolume.
demo        the demo's one MO-ASHA rung (the Makefile's DEMO_GRACE, DEMO_ETA): 24 trials on 2 workers, random
            search, ``--seeds`` x 2 seeds, for rungs from step 60 down to 30 (each the only rung: grace x eta
            >= the 150 steps): trial-steps and wall time against the rung at 60 (1 in 2.5), trials finished in
            the median and the worst seed (the demo promises 6), hypervolume against the rung at 60 with the
            same seed, the median winner. Not in the default list: ``--studies demo``.

The wall-clock studies (scale, budget, demo) replay each trial's start-up as measured again with today's trainer
(``bench/record_startups.py``, ``--startups measured``, the default where it has been measured) or as the pool
recorded it (``--startups recorded``); the others count trial-steps, not seconds, and replay the pool as recorded.

Hypervolume: log10 bytes and quality normalised over the pool's own candidates, reference point at the
pool's nadir + 10 % (``replay.Scale``): the same box for every strategy and seed. The winner is the
selector's (tolerance 0.05).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from search.replay.pool import Pool, read_pool, read_startups, with_startups  # noqa: E402
from search.replay.simulate import Scale, Strategy, at_budget, front_records, nearest_records, replay, winner  # noqa: E402
from search.settings import DEFAULT_REDUCTION_FACTOR  # noqa: E402

REFERENCE = Strategy("random-full", "random", "none")
STRATEGIES = [
    REFERENCE,
    Strategy("random+asha", "random", "asha"),
    Strategy("random+moasha", "random", "moasha"),  # the sweep's default
    # MO-ASHA by its quota alone (`sweep --no-keep-front`; the default before 2026-12-07, then at two reports, eta 3)
    Strategy("random+moasha-quota", "random", "moasha", keep_front=False),
    # MO-ASHA judging float32 bytes (`model_bytes`, the sweep's size objective until 2026-12-07)
    Strategy("random+moasha-float32-size", "random", "moasha", size_metric="model_bytes"),
    Strategy("nsga2+moasha", "nsga2", "moasha"),
    Strategy("nsga3+moasha", "nsga3", "moasha"),
    Strategy("motpe+moasha", "motpe", "moasha"),
]
GRACES = (None, 10, 15, 25)      # steps; None: the sweep's default, one report
ETAS = (3.0, 4.0, 6.0, 8.0)
WORKERS = (2, 8, 32, 128)
# the demo's rung candidates (grace steps, eta): each the sweep's only rung at 150 steps (grace x eta >= 150)
DEMO_RUNGS = ((60, 2.5), (50, 3.01), (45, 3.34), (40, 4.0), (35, 4.3), (30, 5.01))
DEMO_TRIALS, DEMO_FINISHED = 24, 6  # the Makefile's DEMO_TRIALS; finished trials the demo promises per instrument
MIN_RTF = 5.0  # the default sweep's speed bar, what the pools were recorded under
GOAL_HV, GOAL_STEPS = 0.97, 1 / 3


# ---------------------------------------------------------------------------- one replayed search


class Run:
    """One replay scored: hypervolume (normalised), trial-steps, winner, trajectory."""

    def __init__(self, pool: Pool, scale: Scale, strategy: Strategy, seed: int, trials: int, workers: int = 2,
                 overhead_s: float = 0.0, warm: list[int] = (), time_budget_s: float | None = None):
        self.outcome = replay(pool.records, strategy, seed, trials, pool.steps, pool.report_every, workers,
                              overhead_s, warm, MIN_RTF, time_budget_s, pool.fresh_worker_s, pool.trials_per_worker)
        self.candidates = self.outcome.candidates(pool.records)
        self.hv = scale.hypervolume(self.candidates)
        self.steps = self.outcome.trial_steps
        self.winner = winner(self.candidates)
        self.trajectory = scale.trajectory(self.outcome, pool.records)


def default_grace(pool: Pool) -> int:
    """The sweep's default first rung on the pool: its first report(s). (The pools report every 5 of 150
    steps; a sweep of 150 steps reports every 7, between the pool's first two reports: bench/README.md.)"""
    from search.settings import DEFAULT_GRACE_REPORTS

    return DEFAULT_GRACE_REPORTS * pool.report_every


def defaulted(strategy: Strategy, pool: Pool) -> Strategy:
    return strategy if strategy.grace else dataclasses.replace(strategy, grace=default_grace(pool))


def iqr(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(median), float(q1), float(q3)


def summarise(runs: dict[int, Run], refs: dict[int, Run], budget: int) -> dict:
    ratio = [runs[s].hv / refs[s].hv for s in runs]
    steps = [runs[s].steps / budget for s in runs]
    wins = [runs[s].winner for s in runs if runs[s].winner]
    paired = [(runs[s].winner[0] > refs[s].winner[0]) - (runs[s].winner[0] < refs[s].winner[0])
              for s in runs if runs[s].winner and refs[s].winner]  # per seed: +1 larger, -1 smaller, 0 the same bytes
    return {"hv": iqr(ratio), "steps": iqr(steps), "hv_abs": iqr([r.hv for r in runs.values()]),
            "winner_bytes": statistics.median(w[0] for w in wins) if wins else float("nan"),
            "winner_quality": statistics.median(w[1] for w in wins) if wins else float("nan"),
            "winner_vs_seed": (paired.count(0), paired.count(1), paired.count(-1))}


def row(name: str, s: dict, ref: dict) -> str:
    hv, st = s["hv"], s["steps"]
    goal = "yes" if hv[0] >= GOAL_HV and st[0] <= GOAL_STEPS and s["winner_bytes"] <= ref["winner_bytes"] and \
        s["winner_quality"] <= 1.05 * ref["winner_quality"] else "no"
    same, larger, smaller = s["winner_vs_seed"]
    return (f"| {name} | {hv[0]:.3f} ({hv[1]:.3f}-{hv[2]:.3f}) | {st[0]:.2f} ({st[1]:.2f}-{st[2]:.2f}) | "
            f"{s['winner_bytes']:,.0f} / {s['winner_quality']:.4f} | {same} / {larger} / {smaller} | {goal} |")


HEADER = ("| strategy | hypervolume / reference's, median (IQR) | trial-steps / reference's, median (IQR) | "
          "median winner bytes / quality | winner's bytes vs the same seed's reference: same / larger / smaller | "
          "goal |\n|---|---|---|---|---|---|")


# ---------------------------------------------------------------------------- studies


def study_strategies(pools: list[Pool], scales: dict, args) -> dict:
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"\n## strategies: seeds {seeds[0]}-{seeds[-1]} x {args.trials} trials, 2 workers, MO-ASHA at the sweep's defaults")
    curves = {}
    for pool in pools:
        budget = args.trials * pool.steps
        runs = {s.name: {seed: Run(pool, scales[pool.instrument], defaulted(s, pool), seed, args.trials)
                         for seed in seeds} for s in STRATEGIES}
        ref = summarise(runs[REFERENCE.name], runs[REFERENCE.name], budget)
        print(f"\n### {pool.instrument} ({len(pool.records)} recorded trials; grace {default_grace(pool)}, "
              f"eta {DEFAULT_REDUCTION_FACTOR:g}, front kept)\n")
        print(HEADER)
        for name, by_seed in runs.items():
            print(row(name, summarise(by_seed, runs[REFERENCE.name], budget), ref))
        curves[pool.instrument] = {name: [r.trajectory for r in by_seed.values()] for name, by_seed in runs.items()}
        curves[pool.instrument]["_ref"] = {seed: r.hv for seed, r in runs[REFERENCE.name].items()}
    return curves


def study_schedule(pools: list[Pool], scales: dict, args) -> Strategy:
    """Grid over (grace, eta) for random + MO-ASHA: choose on the first seeds, report on fresh ones."""
    print(f"\n## MO-ASHA settings: random + MO-ASHA keeping the front, chosen on seeds 0-{args.seeds - 1}, reported on seeds "
          f"{args.seeds}-{2 * args.seeds - 1}")
    base = Strategy("random+moasha", "random", "moasha")
    grid = [(g, e) for g in GRACES for e in ETAS]
    scores: dict[tuple, list[float]] = {k: [] for k in grid}
    table = {}
    for pool in pools:
        budget = args.trials * pool.steps
        for half, seeds in (("choose", range(args.seeds)), ("report", range(args.seeds, 2 * args.seeds))):
            refs = {seed: Run(pool, scales[pool.instrument], REFERENCE, seed, args.trials) for seed in seeds}
            for grace, eta in grid:
                strategy = defaulted(base.with_schedule(grace, eta), pool)
                runs = {seed: Run(pool, scales[pool.instrument], strategy, seed, args.trials) for seed in seeds}
                summary = summarise(runs, refs, budget)
                table[(pool.instrument, half, grace, eta)] = (summary, summarise(refs, refs, budget))
                if half == "choose":
                    scores[(grace, eta)].append(summary["hv"][0] if summary["steps"][0] <= GOAL_STEPS else -1.0)
    # the setting whose worst instrument does best among those within a third of the trial-steps
    chosen = max(grid, key=lambda k: (min(scores[k]), sum(scores[k])))
    for pool in pools:
        print(f"\n### {pool.instrument}: the choosing seeds, then the chosen setting on the reporting seeds\n")
        print("| grace (steps) | eta | hypervolume / reference's (choose) | trial-steps (choose) |\n|---|---|---|---|")
        for grace, eta in grid:
            s, _ = table[(pool.instrument, "choose", grace, eta)]
            mark = " **chosen**" if (grace, eta) == chosen else ""
            print(f"| {grace or f'{default_grace(pool)} (default)'} | {eta:g} | {s['hv'][0]:.3f} ({s['hv'][1]:.3f}-"
                  f"{s['hv'][2]:.3f}) | {s['steps'][0]:.2f}{mark} |")
        s, ref = table[(pool.instrument, "report", *chosen)]
        print(f"\nreported (fresh seeds):\n\n{HEADER}")
        print(row(f"random+moasha g{chosen[0] or default_grace(pool)} e{chosen[1]:g}", s, ref))
        print(row("random-full (reference)", ref, ref))
    return base.with_schedule(*chosen)


def study_warm(pools: list[Pool], scales: dict, strategy: Strategy, args) -> None:
    if len(pools) < 2:
        return
    print(f"\n## warm starts: {strategy.name}, seeded with the other instrument's front (same seed), up to "
          f"{args.trials // 4} configurations")
    print("\n| instrument | seeded from | hypervolume warm / cold at the cold run's trial-steps, median (IQR) | "
          "at half of them | cold / warm trial-steps |\n|---|---|---|---|---|")
    for pool, other in ((pools[0], pools[1]), (pools[1], pools[0])):
        s, o = defaulted(strategy, pool), defaulted(strategy, other)
        full, half, steps = [], [], []
        for seed in range(args.seeds):
            source = Run(other, scales[other.instrument], o, seed, args.trials)
            configs = [other.records[i].config for i in front_records(source.outcome, other.records)]
            warm = nearest_records(configs, pool.records)[:args.trials // 4]
            cold = Run(pool, scales[pool.instrument], s, seed, args.trials)
            hot = Run(pool, scales[pool.instrument], s, seed, args.trials, warm=warm)
            full.append(at_budget(hot.trajectory, cold.steps) / max(1e-12, cold.hv))
            half.append(at_budget(hot.trajectory, cold.steps / 2) / max(1e-12, at_budget(cold.trajectory, cold.steps / 2)))
            steps.append(f"{cold.steps}/{hot.steps}")
        f, h = iqr(full), iqr(half)
        print(f"| {pool.instrument} | {other.instrument} | {f[0]:.3f} ({f[1]:.3f}-{f[2]:.3f}) | "
              f"{h[0]:.3f} ({h[1]:.3f}-{h[2]:.3f}) | {', '.join(steps[:4])}, ... |")


def study_scale(pools: list[Pool], scales: dict, strategy: Strategy, args) -> dict:
    print(f"\n## scale: {strategy.name}, {args.scale_trials} trials drawn from the pool, {args.scale_seeds} seeds, "
          f"{args.overhead_s:g} s overhead per trial (medians over seeds)")
    print("\n| instrument | workers | wall (h) | utilisation | trial-steps | hv vs 2 workers at 25 % / 50 % / 100 % of "
          "their trial-steps | hours to 95 % of 2 workers' final hv (speed-up) |\n|---|---|---|---|---|---|---|")
    curves = {}
    for pool in pools:
        s = defaulted(strategy, pool)
        runs = {w: [Run(pool, scales[pool.instrument], s, seed, args.scale_trials, w, args.overhead_s)
                    for seed in range(args.scale_seeds)] for w in WORKERS}
        base = runs[WORKERS[0]]
        base_hours = statistics.median(_hours_to(b.trajectory, 0.95 * b.hv) for b in base)
        for w, by_seed in runs.items():
            equal = [statistics.median(at_budget(r.trajectory, frac * b.steps) /
                                       max(1e-12, at_budget(b.trajectory, frac * b.steps))
                                       for r, b in zip(by_seed, base)) for frac in (0.25, 0.5, 1.0)]
            hours = statistics.median(_hours_to(r.trajectory, 0.95 * b.hv) for r, b in zip(by_seed, base))
            print(f"| {pool.instrument} | {w} | {statistics.median(r.outcome.wall_s for r in by_seed) / 3600:.2f} | "
                  f"{statistics.median(r.outcome.utilisation for r in by_seed):.3f} | "
                  f"{statistics.median(r.steps for r in by_seed):,.0f} | {' / '.join(f'{f:.3f}' for f in equal)} | "
                  f"{hours:.2f} ({base_hours / max(hours, 1e-9):.1f}x) |")
        curves[pool.instrument] = {w: [r.trajectory for r in by_seed] for w, by_seed in runs.items()}
    study_idle(pools, scales, strategy, args)
    return curves


def study_budget(pools: list[Pool], scales: dict, strategy: Strategy, args) -> None:
    """The most workers under a wall-clock budget (``tonesweep sweep --time-budget``) instead of a trial count:
    trials start until the budget runs out and those running then stop at the step it ran out (or after their
    first, if still starting). Budgets: the wall of the ``--scale-trials`` run on those workers (same seed), and
    the moment its last trial started (where its drain began). Hypervolume against that run, and against the
    2-worker run at equal trial-steps."""
    workers = WORKERS[-1]
    print(f"\n### {workers} workers under a wall-clock budget (median over seeds)\n\n| instrument | budget (s) | wall (s) | "
          "trials started (stopped by the budget) | utilisation | of which in stopped trials | useful utilisation | "
          f"trial-steps | hv vs the {args.scale_trials:,}-trial run | hv vs 2 workers at equal trial-steps |"
          "\n|---|---|---|---|---|---|---|---|---|---|")
    med = lambda values: statistics.median(list(values))  # noqa: E731
    for pool in pools:
        s, scale = defaulted(strategy, pool), scales[pool.instrument]
        counted = [Run(pool, scale, s, seed, args.scale_trials, workers, args.overhead_s) for seed in range(args.scale_seeds)]
        base = [Run(pool, scale, s, seed, args.scale_trials, WORKERS[0], args.overhead_s) for seed in range(args.scale_seeds)]
        for name, budget_of in (("its wall", lambda o: o.wall_s), ("its last start", lambda o: o.last_start_s)):
            runs = [Run(pool, scale, s, seed, 100 * args.scale_trials, workers, args.overhead_s,
                        time_budget_s=budget_of(c.outcome)) for seed, c in enumerate(counted)]
            equal = [at_budget(r.trajectory, min(r.steps, b.steps)) / max(1e-12, at_budget(b.trajectory, min(r.steps, b.steps)))
                     for r, b in zip(runs, base)]
            print(f"| {pool.instrument} | {name}: {med(budget_of(c.outcome) for c in counted):.0f} | "
                  f"{med(r.outcome.wall_s for r in runs):.0f} | {med(len(r.outcome.ends) for r in runs):,.0f} "
                  f"({med(sum(e.cut for e in r.outcome.ends) for r in runs):.0f}) | "
                  f"{med(r.outcome.utilisation for r in runs):.3f} | {med(r.outcome.cut_share for r in runs):.3f} | "
                  f"{med(r.outcome.useful_utilisation for r in runs):.3f} | {med(r.steps for r in runs):,.0f} | "
                  f"{med(r.hv / max(1e-12, c.hv) for r, c in zip(runs, counted)):.3f} | {med(equal):.3f} |")


def study_idle(pools: list[Pool], scales: dict, strategy: Strategy, args) -> None:
    """Where the idle time of the most workers (``WORKERS[-1]``) falls: before or after the last trial starts
    (the drain), and how the drain compares with a full trial, at ``--idle-multiples`` of ``--scale-trials``
    (default 1 and 4; the 4,000-trial replays at 128 workers take many minutes)."""
    workers = WORKERS[-1]
    print(f"\n### where {workers} workers idle (median over seeds)\n\n| instrument | trials | wall (h) | busy before the last "
          "start / after it | drain after the last start (s) | drain in median full trials | longest full trial (s) |"
          "\n|---|---|---|---|---|---|---|")
    for pool in pools:
        s = defaulted(strategy, pool)
        full = [r.seconds(pool.steps) + r.eval_s + args.overhead_s for r in pool.records]
        for trials in (m * args.scale_trials for m in args.idle_multiples):
            outs = [Run(pool, scales[pool.instrument], s, seed, trials, workers, args.overhead_s).outcome
                    for seed in range(args.scale_seeds)]
            drains = [o.wall_s - o.last_start_s for o in outs]
            before = statistics.median(o.utilisation_between(0.0, o.last_start_s) for o in outs)
            after = statistics.median(o.utilisation_between(o.last_start_s, o.wall_s) for o in outs)
            print(f"| {pool.instrument} | {trials:,} | {statistics.median(o.wall_s for o in outs) / 3600:.3f} | "
                  f"{before:.3f} / {after:.3f} | {statistics.median(drains):.0f} | "
                  f"{statistics.median(drains) / statistics.median(full):.1f} | {max(full):.0f} |")


def study_demo(pools: list[Pool], scales: dict, strategy: Strategy, args) -> None:
    """What the demo's one rung costs and keeps: the Makefile's sweep of one instrument (``DEMO_TRIALS`` trials
    on 2 workers, ``strategy``'s search and scheduler) for each of ``DEMO_RUNGS``, against the first."""
    seeds = range(2 * args.seeds)
    first = f"the rung at {DEMO_RUNGS[0][0]}"
    print(f"\n## the demo's rung: {DEMO_TRIALS} trials on 2 workers, seeds 0-{seeds[-1]}, each setting the only rung")
    for pool in pools:
        runs = {rung: {seed: Run(pool, scales[pool.instrument], strategy.with_schedule(*rung), seed, DEMO_TRIALS,
                                 overhead_s=args.overhead_s) for seed in seeds} for rung in DEMO_RUNGS}
        ref = runs[DEMO_RUNGS[0]]
        print(f"\n### {pool.instrument}\n\n| rung (step, eta) | trial-steps, median | vs {first} | wall vs {first} | "
              f"finished, median / worst seed | seeds under {DEMO_FINISHED} finished | hypervolume vs {first}, "
              "median (worst) | median winner bytes / quality |\n|---|---|---|---|---|---|---|---|")
        for (grace, eta), by_seed in runs.items():
            finished = [len(r.outcome.finished()) for r in by_seed.values()]
            hv = [by_seed[s].hv / ref[s].hv for s in seeds]
            wins = [r.winner for r in by_seed.values() if r.winner]
            print(f"| {grace}, {eta:g} | {statistics.median(r.steps for r in by_seed.values()):,.0f} | "
                  f"{statistics.median(by_seed[s].steps / ref[s].steps for s in seeds):.2f} | "
                  f"{statistics.median(by_seed[s].outcome.wall_s / ref[s].outcome.wall_s for s in seeds):.2f} | "
                  f"{statistics.median(finished):g} / {min(finished)} | {sum(f < DEMO_FINISHED for f in finished)} | "
                  f"{statistics.median(hv):.3f} ({min(hv):.3f}) | {statistics.median(w[0] for w in wins):,.0f} / "
                  f"{statistics.median(w[1] for w in wins):.4f} |")


def clocked(pool: Pool, startups: str) -> Pool:
    """The pool the wall-clock studies replay: with its start-ups measured again (``startups="measured"``), where
    bench/record_startups.py has measured them, else as recorded."""
    path = REPO / "bench" / "data" / f"startups-{pool.instrument}.json.gz"
    if startups == "recorded" or not path.is_file():
        print(f"pool {pool.instrument}: start-ups as recorded {pool.meta.get('recorded')}")
        return pool
    measured, meta = read_startups(path, pool)
    timed = with_startups(pool, measured, meta.get("trials_per_worker", ()))
    print(f"pool {pool.instrument}: start-ups measured again {meta.get('recorded')} ({path.name}): in a reused worker "
          f"median {statistics.median(s.startup_s for s in measured):.2f} s (as recorded: "
          f"{statistics.median(r.startup_s for r in pool.records):.2f} s); a fresh worker adds "
          f"{timed.fresh_worker_s:.1f} s, every {timed.trials_per_worker or 'no'}th trial of a worker")
    return timed


def _hours_to(trajectory: list[tuple[int, float, float]], target: float) -> float:
    """Wall hours until the hypervolume first reaches ``target`` (inf: never)."""
    return next((t / 3600 for _, t, hv in trajectory if hv >= target), float("inf"))


# ---------------------------------------------------------------------------- the plot


def plot(path: Path, curves: dict, scale_curves: dict, trials: int, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = len(curves) + (2 if scale_curves else 0)
    fig, axes = plt.subplots(1, columns, figsize=(5.2 * columns, 4.2), squeeze=False)
    grid = np.linspace(0, 1, 101)
    for ax, (instrument, by_strategy) in zip(axes[0], curves.items()):
        refs = by_strategy["_ref"]
        for name, trajectories in by_strategy.items():
            if name == "_ref":
                continue
            ys = np.array([[at_budget(t, g * trials * steps) / refs[seed] for g in grid]
                           for seed, t in enumerate(trajectories)])
            q1, med, q3 = np.percentile(ys, [25, 50, 75], axis=0)
            line, = ax.plot(grid, med, label=name, lw=1.6)
            ax.fill_between(grid, q1, q3, color=line.get_color(), alpha=0.15)
        ax.axhline(GOAL_HV, color="grey", ls=":", lw=1)
        ax.axvline(GOAL_STEPS, color="grey", ls=":", lw=1)
        ax.set(title=f"{instrument}: {len(trajectories)} seeds x {trials} trials", xlabel="trial-steps / reference's",
               ylabel="hypervolume / reference's (median, IQR)", ylim=(0.5, 1.05))
        ax.legend(fontsize=7, loc="lower right")
    if scale_curves:
        instrument, by_workers = next(iter(scale_curves.items()))
        best = max(t[-1][2] for ts in by_workers.values() for t in ts)
        for ax, axis, scale, label in ((axes[0][-2], 0, 1000, "trial-steps (thousands)"),
                                       (axes[0][-1], 1, 3600, "wall hours (log)")):
            top = max(t[-1][axis] for ts in by_workers.values() for t in ts)
            xs = np.geomspace(top / 1000, top, 200) if axis else np.linspace(0, top, 101)
            for w, trajectories in by_workers.items():
                ys = np.median([[at_budget(t, x, axis) / best for x in xs] for t in trajectories], axis=0)
                ax.plot(xs / scale, ys, label=f"{w} workers")
            ax.set(title=f"{instrument}: simulated workers", xlabel=label, ylabel="hypervolume / best reached (median)",
                   ylim=(0.5, 1.05))
            if axis:
                ax.set_xscale("log")
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", nargs="+", default=sorted(str(p) for p in (REPO / "bench" / "data").glob("pool-*.json.gz")))
    parser.add_argument("--trials", type=int, default=30, help="trials per search")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the strategies study's first seed (the others' seeds start at 0: their choosing seeds)")
    parser.add_argument("--studies", default="strategies,schedule,warm,scale,budget")
    parser.add_argument("--scale-trials", type=int, default=1000)
    parser.add_argument("--scale-seeds", type=int, default=3)
    parser.add_argument("--overhead-s", type=float, default=1.1,
                        help="Ray + MLflow per trial (bench/sweep_overhead.py at 150 steps: 3.6 %% of 2 x 487 s over 32 trials)")
    parser.add_argument("--idle-multiples", type=lambda text: [int(m) for m in text.split(",")], default=[1, 4],
                        help="the idle table's trial counts, as multiples of --scale-trials (default 1,4)")
    parser.add_argument("--startups", choices=("measured", "recorded"), default="measured",
                        help="the wall-clock studies' (scale, budget) trial start-ups: each record's measured again with "
                             "today's trainer (bench/data/startups-<instrument>.json.gz, bench/record_startups.py), or "
                             "the pool's as recorded")
    parser.add_argument("--plot", default=str(REPO / "bench" / "figures" / "search-efficiency.png"))
    args = parser.parse_args()
    if not args.pools:
        raise SystemExit("no pools: record them with bench/record_pool.py (bench/README.md)")

    import optuna

    from cli.main import quiet_libraries

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with quiet_libraries("sweep"):  # as `tonesweep sweep` runs: the Optuna strategies load TensorFlow
        return run_studies(args)


def run_studies(args) -> int:
    started = time.perf_counter()
    pools = [read_pool(Path(p)) for p in args.pools]
    scales = {p.instrument: Scale(p.records) for p in pools}
    for p in pools:
        print(f"pool {p.instrument}: {len(p.records)} trials x {p.steps} steps, reports every {p.report_every}, "
              f"recorded {p.meta.get('recorded')} ({p.meta.get('refused')} refused by --min-rtf {p.meta.get('min_rtf')})")
    timed = [clocked(p, args.startups) for p in pools] if {"scale", "budget", "demo"} & set(args.studies.split(",")) else pools
    studies = set(args.studies.split(","))
    curves = study_strategies(pools, scales, args) if "strategies" in studies else {}
    # warm starts and scale are studied for what a sweep does by default (search.settings), not for the
    # schedule study's pick, which is a recommendation to weigh (bench/README.md says what was decided)
    default = Strategy("random+moasha", "random", "moasha")
    if "schedule" in studies:
        study_schedule(pools, scales, args)
    if "warm" in studies:
        study_warm(pools, scales, default, args)
    scale_curves = study_scale(timed, scales, default, args) if "scale" in studies else {}
    if "budget" in studies:
        study_budget(timed, scales, default, args)
    if "demo" in studies:
        study_demo(timed, scales, default, args)
    if curves:
        plot(Path(args.plot), curves, scale_curves, args.trials, pools[0].steps)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

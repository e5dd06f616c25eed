"""Which search decides the default: hypervolume bought per trial-step, on one demo instrument.

    .venv/bin/python bench/search_efficiency.py --dataset demo/datasets/bansuri
        [--pool 32] [--trials 16] [--steps 150] [--seeds 3] [--live] [--references]

Strategies (same space, data and seeds; every trial's budget is --steps):
  random-full     random search, every trial to the end (the reference)
  random+asha     random search, ASHA on val_loss
  random+moasha   random search, multi-objective ASHA over (model bytes, val_loss)
  nsga2+moasha    Optuna NSGA-II over (model bytes, val_loss), multi-objective ASHA

Method (the tabular benchmark of HPO research, as Syne Tune's simulator and LCBench do it): a live
random sweep of --pool configurations records every trial's learning curve (val_loss at every
report), its size and its final qualities once; each strategy is then replayed on those records
with two simulated workers, each trial taking the time it took live, and the real schedulers
(Ray's ``ASHAScheduler``, our ``MOASHAScheduler``) and samplers (our ``OptunaSearcher``) deciding.
A sampler's suggestion is mapped to the nearest recorded configuration. --live runs seed 0 of each
strategy for real as well, so replay and live can be compared. --references trains ddsp's
``tiny_instrument`` and ``solo_instrument`` decoders at the same steps.

Hypervolume is measured where differences show: log10 bytes and quality are normalised over the
union of every strategy's candidates, the reference point is that union's nadir plus 10 %. The
winner is the selector's (tolerance 0.05). Records and results are cached under --cache.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STRATEGIES = {  # name -> (algorithm, scheduler, every trial to the end?)
    "random-full": ("random", "none"),
    "random+asha": ("random", "asha"),
    "random+moasha": ("random", "moasha"),
    "nsga2+moasha": ("nsga2", "moasha"),
}
TINY_INSTRUMENT = {"decoder": "gru", "gru_units": 256, "fc_layers": 0, "n_harmonics": 60, "n_noise_bands": 65,
                   "frame_rate": 250, "feature": "loudness"}
SOLO_INSTRUMENT = {"decoder": "gru", "gru_units": 512, "hidden": 512, "fc_layers": 3, "n_harmonics": 60,
                   "n_noise_bands": 65, "frame_rate": 250, "feature": "loudness"}
WORKERS = 2


@dataclass
class Record:
    """One recorded trial: what a replay needs."""

    config: dict
    model_bytes: float
    curve: dict[int, float]                 # step -> val_loss
    candidates: list[tuple[float, float]]   # (bytes, quality) per precision
    seconds_per_step: float
    eval_s: float


@dataclass
class Outcome:
    """What one strategy produced."""

    candidates: list[tuple[float, float]] = field(default_factory=list)
    trial_steps: int = 0


# ---------------------------------------------------------------------------- recording (live)


def live_sweep(dataset: str, root: Path, name: str, algorithm: str, scheduler: str, trials: int, steps: int,
               seed: int) -> tuple[list[Record], Outcome, float]:
    """Run a real sweep; returns its trials as records, its outcome and its wall time."""
    from search.settings import SweepSettings
    from search.sweep import run_sweep

    settings = SweepSettings(datasets=[dataset], trials=trials, algorithm=algorithm, scheduler=scheduler,
                             steps=steps, name=name, storage=str(root / "runs"), seed=seed,
                             tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    start = time.perf_counter()
    [result] = run_sweep(settings, say=lambda line: print(f"    {line}", flush=True) if "trial" not in line else None)
    wall = time.perf_counter() - start
    records, outcome = read_sweep(f"sqlite:///{root / 'mlflow.db'}", result)
    return records, outcome, wall


def read_sweep(uri: str, result) -> tuple[list[Record], Outcome]:
    from mlflow import MlflowClient

    from common.constants import PRECISIONS
    from results.layout import trial_metrics
    from results.tracking import child_runs

    client = MlflowClient(uri)
    records, outcome = [], Outcome()
    for run in child_runs(client, result.experiment_id, result.parent_run_id):
        metrics, status = trial_metrics(run.data.metrics), run.data.tags.get("tonesweep.status")
        curve = {int(m.step): m.value for m in client.get_metric_history(run.info.run_id, "val_loss")}
        outcome.trial_steps += max(curve, default=0) if status != "FINISHED" else int(metrics.get("steps", 0))
        if status != "FINISHED":
            continue
        candidates = [(metrics[f"bytes_{p}"], metrics[f"quality_{p}"]) for p in PRECISIONS
                      if math.isfinite(metrics.get(f"quality_{p}", math.nan))]
        outcome.candidates.extend(candidates)
        config = {k: _parse(v) for k, v in run.data.params.items()}
        records.append(Record(config, metrics["model_bytes"], curve, candidates,
                              metrics["train_time_s"] / max(1.0, metrics["steps"]), metrics.get("eval_time_s", 0.0)))
    return records, outcome


def _parse(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


# ---------------------------------------------------------------------------- replay


class PoolSampler:
    """Random search over the recorded pool: distinct records in a seeded order."""

    def __init__(self, records: list[Record], seed: int):
        self.order = list(np.random.default_rng(seed).permutation(len(records)))

    def next(self, trial_id: str) -> int:
        return int(self.order.pop(0))

    def tell(self, trial_id: str, result: dict) -> None:
        pass


class OptunaPoolSampler:
    """Our OptunaSearcher, its suggestions mapped to the nearest recorded configuration."""

    def __init__(self, records: list[Record], seed: int, trials: int):
        from search.algorithms.optuna_searcher import OptunaSearcher
        from spaces import default_space

        self.records, self.space = records, default_space()
        self.searcher = OptunaSearcher(self.space, "nsga2", max_trials=trials, seed=seed, max_concurrent=WORKERS)

    def next(self, trial_id: str) -> int:
        config = self.searcher.suggest(trial_id)
        return min(range(len(self.records)), key=lambda i: config_distance(config, self.records[i].config, self.space))

    def tell(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_complete(trial_id, result)


def config_distance(a: dict, b: dict, space) -> float:
    """Distance over the space's hyperparameters: 1 per categorical mismatch or inactive-vs-active,
    range-normalised difference (log scale where sampled so) for numbers."""
    import keras_tuner as kt

    total = 0.0
    for hp in space.hyperparameters.space:
        x, y = a.get(hp.name), b.get(hp.name)
        if x is None or y is None:
            total += float((x is None) != (y is None))
        elif isinstance(hp, (kt.engine.hyperparameters.Int, kt.engine.hyperparameters.Float)):
            f = math.log if hp.sampling == "log" else float
            total += abs(f(x) - f(y)) / max(1e-12, f(hp.max_value) - f(hp.min_value))
        else:
            total += float(x != y)
    return total


def make_scheduler(name: str, steps: int, report_every: int):
    from ray.tune.schedulers import ASHAScheduler

    from search.algorithms.moasha import MOASHAScheduler
    from search.tuner import REDUCTION_FACTOR

    grace = min(steps, 2 * report_every)
    if name == "asha":
        scheduler = ASHAScheduler(time_attr="step", metric="val_loss", mode="min", max_t=steps, grace_period=grace,
                                  reduction_factor=REDUCTION_FACTOR)
        return lambda tid, r: scheduler.on_trial_result(None, SimpleNamespace(trial_id=tid), r), scheduler
    if name == "moasha":
        scheduler = MOASHAScheduler(max_t=steps, grace_period=grace, reduction_factor=REDUCTION_FACTOR)
        return scheduler.decide, scheduler
    return (lambda tid, r: "CONTINUE"), None


def replay(records: list[Record], strategy: str, seed: int, trials: int, steps: int, report_every: int) -> Outcome:
    """Two simulated workers run ``trials`` trials; events in time order, the real schedulers decide."""
    algorithm, scheduler_name = STRATEGIES[strategy]
    sampler = OptunaPoolSampler(records, seed, trials) if algorithm == "nsga2" else PoolSampler(records, seed)
    decide, scheduler = make_scheduler(scheduler_name, steps, report_every)
    outcome, events, started = Outcome(), [], 0

    def start(now: float) -> None:
        nonlocal started
        trial_id = f"t{started}"
        started += 1
        index = sampler.next(trial_id)
        if scheduler is not None and hasattr(scheduler, "on_trial_add"):
            scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial_id))
        record = records[index]
        for step in range(report_every, steps, report_every):  # the trainable holds back the last report
            heapq.heappush(events, (now + step * record.seconds_per_step, trial_id, step, index))
        heapq.heappush(events, (now + steps * record.seconds_per_step + record.eval_s, trial_id, steps, index))

    for _ in range(min(WORKERS, trials)):
        start(0.0)
    stopped: set[str] = set()
    while events:
        now, trial_id, step, index = heapq.heappop(events)
        if trial_id in stopped:
            continue
        record = records[index]
        loss = _loss_at(record, step)
        result = {"step": step, "val_loss": loss, "model_bytes": record.model_bytes}
        if step < steps and decide(trial_id, result) != "STOP":
            continue
        stopped.add(trial_id)
        outcome.trial_steps += step
        if step == steps:
            outcome.candidates.extend(record.candidates)
        sampler.tell(trial_id, {**result, "status": "FINISHED" if step == steps else None})
        if started < trials:
            start(now)
    return outcome


def _loss_at(record: Record, step: int) -> float:
    steps = sorted(record.curve)
    return record.curve[min(steps, key=lambda s: (abs(s - step), s))]


# ---------------------------------------------------------------------------- scoring


def normalised_hypervolumes(outcomes: dict[str, Outcome]) -> dict[str, float]:
    """Hypervolume of each outcome, objectives normalised over the union, reference = nadir + 10 %."""
    from results.pareto import hypervolume_2d

    union = np.array([(math.log10(b), q) for o in outcomes.values() for b, q in o.candidates])
    low, high = union.min(axis=0), union.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    out = {}
    for name, outcome in outcomes.items():
        points = (np.array([(math.log10(b), q) for b, q in outcome.candidates]).reshape(-1, 2) - low) / span
        out[name] = hypervolume_2d(points[:, 0], points[:, 1], 1.1, 1.1) / (1.1 * 1.1)
    return out


def winner(outcome: Outcome, tolerance: float = 0.05) -> tuple[float, float] | None:
    """The selector's smallest acceptable candidate (bytes, quality)."""
    from results.criteria import Criteria

    if not outcome.candidates:
        return None
    best = min(q for _, q in outcome.candidates)
    criteria = Criteria(tolerance)
    return min(((b, q) for b, q in outcome.candidates if criteria.accepts(q, best)), key=lambda c: (c[0], c[1]))


def train_reference(dataset: str, config: dict, steps: int, root: Path) -> dict:
    from trainers.training.train import train_trial

    metrics = train_trial(dataset, {**config, "steps": steps}, root / f"ref-{config['gru_units']}", report_every=steps)
    return {"params": metrics["params"], "bytes": metrics["bytes_float32"], "quality": metrics["quality_float32"],
            "train_time_s": metrics["train_time_s"]}


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--pool", type=int, default=32, help="configurations recorded by the live random sweep")
    parser.add_argument("--trials", type=int, default=16, help="trials each strategy gets")
    parser.add_argument("--steps", type=int, default=150, help="training steps of a trial run to the end")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--live", action="store_true", help="also run seed 0 of every strategy for real")
    parser.add_argument("--references", action="store_true", help="train ddsp's tiny/solo_instrument at --steps")
    parser.add_argument("--cache", default=str(REPO / "bench" / ".cache"))
    args = parser.parse_args()

    from search.settings import SweepSettings
    from search.settings import report_every as sweep_report_every
    from trainers.data.dataset import read_manifest

    key = f"{read_manifest(args.dataset)['cache_key'][:12]}-p{args.pool}-s{args.steps}"
    cache = Path(args.cache) / key
    cache.mkdir(parents=True, exist_ok=True)
    report_every = sweep_report_every(SweepSettings(datasets=[], trials=1, steps=args.steps), None)

    recorded = cache / "records.json"
    if not recorded.is_file():
        print(f"recording {args.pool} trials x {args.steps} steps (random, every trial to the end) ...", flush=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            records, outcome, wall = live_sweep(args.dataset, Path(tmp), "record", "random", "none",
                                                args.pool, args.steps, seed=100)
        recorded.write_text(json.dumps({"wall_s": wall, "records": [r.__dict__ for r in records]}))
    data = json.loads(recorded.read_text())
    records = [Record(**{**r, "curve": {int(k): v for k, v in r["curve"].items()},
                         "candidates": [tuple(c) for c in r["candidates"]]}) for r in data["records"]]
    print(f"{len(records)} recorded trials ({data['wall_s']:.0f} s live); {args.trials} trials per strategy, "
          f"{args.steps} steps each, reports every {report_every}")

    results: dict[str, dict[int, Outcome]] = {s: {} for s in STRATEGIES}
    for seed in range(args.seeds):
        for strategy in STRATEGIES:
            results[strategy][seed] = replay(records, strategy, seed, args.trials, args.steps, report_every)

    live: dict[str, Outcome] = {}
    if args.live:
        live_file = cache / f"live-t{args.trials}.json"
        stored = json.loads(live_file.read_text()) if live_file.is_file() else {}
        for strategy, (algorithm, scheduler) in STRATEGIES.items():
            if strategy not in stored:
                print(f"live {strategy} (seed 0) ...", flush=True)
                with tempfile.TemporaryDirectory(dir=cache) as tmp:
                    _, outcome, wall = live_sweep(args.dataset, Path(tmp), strategy.replace("+", "-"), algorithm,
                                                  scheduler, args.trials, args.steps, seed=0)
                stored[strategy] = {"candidates": outcome.candidates, "trial_steps": outcome.trial_steps, "wall_s": wall}
                live_file.write_text(json.dumps(stored))
            live[strategy] = Outcome([tuple(c) for c in stored[strategy]["candidates"]], stored[strategy]["trial_steps"])

    everything = {f"{s}/{seed}": o for s, by_seed in results.items() for seed, o in by_seed.items()}
    everything.update({f"{s}/live": o for s, o in live.items()})
    volumes = normalised_hypervolumes(everything)

    full = args.trials * args.steps
    print("\n| strategy | seed | trial-steps used | of full budget | normalised hypervolume | of reference | winner bytes / quality |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for strategy, by_seed in results.items():
        rows = []
        for seed, outcome in by_seed.items():
            ref = volumes[f"random-full/{seed}"]
            rows.append((outcome.trial_steps / full, volumes[f"{strategy}/{seed}"], volumes[f"{strategy}/{seed}"] / ref))
            w = winner(outcome)
            print(f"| {strategy} | {seed} | {outcome.trial_steps:,} | {outcome.trial_steps / full:.2f} | "
                  f"{volumes[f'{strategy}/{seed}']:.4f} | {rows[-1][2]:.3f} | {_w(w)} |")
        medians = [statistics.median(col) for col in zip(*rows)]
        summary[strategy] = medians
        print(f"| **{strategy}** | median | | {medians[0]:.2f} | {medians[1]:.4f} | {medians[2]:.3f} | |")
        if strategy in live:
            o = live[strategy]
            print(f"| {strategy} | live (seed 0) | {o.trial_steps:,} | {o.trial_steps / full:.2f} | "
                  f"{volumes[f'{strategy}/live']:.4f} | {volumes[f'{strategy}/live'] / volumes['random-full/live']:.3f} "
                  f"| {_w(winner(o))} |")

    if args.references:
        ref_file = cache / "references.json"
        refs = json.loads(ref_file.read_text()) if ref_file.is_file() else {}
        for name, config in (("tiny_instrument", TINY_INSTRUMENT), ("solo_instrument", SOLO_INSTRUMENT)):
            if name not in refs:
                print(f"training {name} for {args.steps} steps ...", flush=True)
                with tempfile.TemporaryDirectory(dir=cache) as tmp:
                    refs[name] = train_reference(args.dataset, config, args.steps, Path(tmp))
                ref_file.write_text(json.dumps(refs))
        best = winner(results["random+moasha"][0])
        for name, ref in refs.items():
            print(f"{name}: {ref['params']:,} params, {ref['bytes']:,} bytes, quality {ref['quality']:.4f}"
                  + (f"; MO-ASHA winner (seed 0) is {ref['bytes'] / best[0]:.1f}x smaller, quality "
                     f"{100 * (best[1] - ref['quality']) / ref['quality']:+.1f} %" if best else ""))
    goal = summary["random+moasha"]
    print(f"\ngoal: random+moasha >= 98% of the reference's normalised hypervolume with <= 1/3 of its trial-steps: "
          f"{goal[2]:.1%} with {goal[0]:.1%} -> {'met' if goal[2] >= 0.98 and goal[0] <= 1 / 3 else 'missed'}")
    return 0


def _w(w) -> str:
    return "-" if w is None else f"{int(w[0]):,} / {w[1]:.4f}"


if __name__ == "__main__":
    sys.exit(main())

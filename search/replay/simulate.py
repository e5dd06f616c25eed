"""Replay a search on a recorded pool (search/replay/pool.py): simulated workers, the real schedulers and samplers.

The tabular benchmark of HPO research (Syne Tune's simulator, LCBench): a strategy's sampler picks a
recorded trial, a simulated worker "runs" it by replaying its learning curve at its recorded speed, and
the real scheduler (Ray's ``ASHAScheduler``, our ``MOASHAScheduler``) decides at every report, in the
order the reports would arrive on ``workers`` workers running asynchronously. A trial occupies its
worker for ``overhead_s`` (Ray and MLflow per trial, measured by bench/sweep_overhead.py) plus its
recorded start-up, its steps at its recorded seconds per step, and, when it runs to the end, its
recorded evaluation. Samplers:

* ``random``: distinct records in a seeded order (with replacement once the pool is used up), the
  random search of the sweep over the space the pool was drawn from;
* an Optuna algorithm of ``search.algorithms.optuna_searcher`` (the real ``OptunaSearcher``, the
  sweep's own limits refusing and redrawing), its suggestion mapped to the nearest recorded
  configuration (``config_distance``).

Warm starts (``warm``): configurations tried first, as ``tonesweep sweep --warm-start`` does
(``search.algorithms.base``), mapped to the nearest records as well. A wall-clock budget
(``time_budget_s``) ends a replay as ``tonesweep sweep --time-budget`` ends a sweep.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from search.algorithms import OBJECTIVE_SIZE
from search.replay.pool import Record
from search.settings import DEFAULT_GRACE_REPORTS, DEFAULT_KEEP_FRONT, DEFAULT_REDUCTION_FACTOR

REPEAT_TIE_BREAK = 1e-9  # relative: a record's n-th repeat reports its (positive) loss times (1 + n x this)


@dataclass(frozen=True)
class Strategy:
    name: str
    sampler: str            # "random" or an Optuna algorithm of the sweep (nsga2, motpe, nsga3)
    scheduler: str          # "none", "asha", "moasha"
    grace: int | None = None          # steps; None: the sweep's default number of the pool's reports
    eta: float = DEFAULT_REDUCTION_FACTOR  # reduction factor (the sweep's default)
    keep_front: bool = DEFAULT_KEEP_FRONT  # MO-ASHA keeps a rung's front beyond its quota (moasha.promote)
    size_metric: str = OBJECTIVE_SIZE      # the size MO-ASHA judges: uint8 bytes, or "model_bytes" (float32)

    def with_schedule(self, grace: int | None, eta: float) -> Strategy:
        return dataclasses.replace(self, name=f"{self.name} g{grace or 'default'} e{eta:g}", grace=grace, eta=eta)


@dataclass
class TrialEnd:
    time: float
    record: int
    steps: int
    finished: bool
    started: float = 0.0
    cut: bool = False  # stopped by the wall-clock budget (at its first report after it): its work bought nothing


@dataclass
class Outcome:
    """What one replay produced: every trial's end in time order."""

    ends: list[TrialEnd] = field(default_factory=list)
    wall_s: float = 0.0
    workers: int = 1

    @property
    def trial_steps(self) -> int:
        return sum(e.steps for e in self.ends)

    def finished(self) -> list[int]:
        return [e.record for e in self.ends if e.finished]

    def candidates(self, records: list[Record], upto: int | None = None) -> list[tuple[float, float]]:
        """(bytes, quality) of every precision of the trials finished among the first ``upto`` ends."""
        return [c for e in self.ends[:upto] if e.finished for c in records[e.record].candidates]

    @property
    def utilisation(self) -> float:
        return self.utilisation_between(0.0, self.wall_s)

    @property
    def last_start_s(self) -> float:
        """When the last trial started: from then on, a worker whose trial ends has nothing to start."""
        return max((e.started for e in self.ends), default=0.0)

    def utilisation_between(self, begin: float, end: float) -> float:
        """Busy worker-time in [begin, end] over the workers' time there (where the idle time falls)."""
        busy = sum(max(0.0, min(e.time, end) - max(e.started, begin)) for e in self.ends)
        return busy / max(1e-9, self.workers * (end - begin))

    @property
    def cut_share(self) -> float:
        """The workers' time spent in trials the budget cut (busy, but for nothing)."""
        cut = sum(e.time - e.started for e in self.ends if e.cut)
        return cut / max(1e-9, self.workers * self.wall_s)

    @property
    def useful_utilisation(self) -> float:
        """The share of the workers' time busy in trials that ended on their own (finished, or stopped by the
        scheduler)."""
        return self.utilisation - self.cut_share


# ---------------------------------------------------------------------------- samplers


class RandomPool:
    """Random search over the pool: warm records first, then distinct records in a seeded order."""

    def __init__(self, records: list[Record], seed: int, warm: list[int] = ()):
        self.rng = np.random.default_rng(seed)
        first = list(dict.fromkeys(warm))
        self.order = first + [int(i) for i in self.rng.permutation(len(records)) if int(i) not in first]
        self.size = len(records)

    def next(self, trial_id: str) -> int:
        return self.order.pop(0) if self.order else int(self.rng.integers(self.size))

    def tell(self, trial_id: str, result: dict) -> None:
        pass


class OptunaPool:
    """The sweep's ``OptunaSearcher`` (limits and all), suggestions mapped to the nearest record."""

    def __init__(self, records: list[Record], algorithm: str, seed: int, trials: int, workers: int,
                 warm: list[dict] = (), min_rtf: float | None = None):
        from search.algorithms.optuna_searcher import OptunaSearcher
        from search.limits import Feasibility, Limits
        from spaces import default_space
        from trainers.model.size import size_report

        self.records, self.space = records, default_space()
        refuse = Feasibility(Limits(min_rtf=min_rtf), size_report) if min_rtf else None
        self.searcher = OptunaSearcher(self.space, algorithm, max_trials=trials, seed=seed, max_concurrent=workers,
                                       refuse=refuse, warm_start=[_values(c, self.space) for c in warm])
        self._vectors = [_vector(r.config, self.space) for r in records]

    def next(self, trial_id: str) -> int:
        config = self.searcher.suggest(trial_id)
        if not isinstance(config, dict):
            raise RuntimeError(f"{self.searcher.algorithm} gave no suggestion ({config!r}); budget or redraws spent")
        return nearest(_vector(config, self.space), self._vectors)

    def tell(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_complete(trial_id, result)


def make_sampler(strategy: Strategy, records: list[Record], seed: int, trials: int, workers: int,
                 warm: list[int] = (), min_rtf: float | None = None):
    if strategy.sampler == "random":
        return RandomPool(records, seed, warm)
    return OptunaPool(records, strategy.sampler, seed, trials, workers, [records[i].config for i in warm], min_rtf)


# ---------------------------------------------------------------------------- configurations


def _values(config: dict, space) -> dict:
    """The space's tuned hyperparameter values of a configuration (what a searcher draws)."""
    names = {hp.name for hp in space.hyperparameters.space}
    return {k: v for k, v in config.items() if k in names}


def _vector(config: dict, space) -> list:
    """A configuration as a point for ``config_distance``: per hyperparameter, (kind, value, scale)."""
    import keras_tuner as kt

    point = []
    for hp in space.hyperparameters.space:
        x = config.get(hp.name)
        if x is not None and isinstance(hp, (kt.engine.hyperparameters.Int, kt.engine.hyperparameters.Float)):
            f = math.log if hp.sampling == "log" else float
            point.append(("num", f(x), max(1e-12, f(hp.max_value) - f(hp.min_value))))
        else:
            point.append(("cat", x, 1.0))
    return point


def config_distance(a: list, b: list) -> float:
    """1 per categorical mismatch or inactive-vs-active hyperparameter; range-normalised difference (log
    scale where sampled so) for numbers."""
    total = 0.0
    for (kind, x, scale), (_, y, _) in zip(a, b):
        if x is None or y is None:
            total += float((x is None) != (y is None))
        elif kind == "num":
            total += abs(x - y) / scale
        else:
            total += float(x != y)
    return total


def nearest(point: list, vectors: list[list]) -> int:
    return min(range(len(vectors)), key=lambda i: config_distance(point, vectors[i]))


def nearest_records(configs: list[dict], records: list[Record]) -> list[int]:
    """Each configuration's nearest record (warm starts from another pool)."""
    from spaces import default_space

    space = default_space()
    vectors = [_vector(r.config, space) for r in records]
    return list(dict.fromkeys(nearest(_vector(c, space), vectors) for c in configs))


# ---------------------------------------------------------------------------- the event loop


def make_scheduler(strategy: Strategy, steps: int, report_every: int):
    """(decide(trial_id, result) -> "CONTINUE"/"STOP", on_add(trial_id))."""
    from ray.tune.schedulers import ASHAScheduler

    from search.algorithms.moasha import MOASHAScheduler

    grace = min(steps, strategy.grace or DEFAULT_GRACE_REPORTS * report_every)
    if strategy.scheduler == "asha":
        asha = ASHAScheduler(time_attr="step", metric="val_loss", mode="min", max_t=steps, grace_period=grace,
                             reduction_factor=strategy.eta)
        return (lambda tid, r: asha.on_trial_result(None, SimpleNamespace(trial_id=tid), r),
                lambda tid: asha.on_trial_add(None, SimpleNamespace(trial_id=tid)))
    if strategy.scheduler == "moasha":
        moasha = MOASHAScheduler(max_t=steps, grace_period=grace, reduction_factor=strategy.eta,
                                 keep_front=strategy.keep_front, size_metric=strategy.size_metric)
        return moasha.decide, lambda tid: None
    return (lambda tid, r: "CONTINUE"), (lambda tid: None)


def replay(records: list[Record], strategy: Strategy, seed: int, trials: int, steps: int, report_every: int,
           workers: int = 2, overhead_s: float = 0.0, warm: list[int] = (), min_rtf: float | None = None,
           time_budget_s: float | None = None, fresh_worker_s: float = 0.0,
           trials_per_worker: int | None = None) -> Outcome:
    """``trials`` trials on ``workers`` simulated workers; reports in time order, the real scheduler decides.

    A trial takes ``overhead_s`` (Ray, MLflow), its record's start-up, steps and evaluation. A worker's first
    trial, and its first after every ``trials_per_worker`` (the sweep recycling a grown worker; None: never),
    starts in a fresh process, which takes ``fresh_worker_s`` more (importing the trainer): a worker's, not a
    configuration's, so records' start-ups are a reused worker's (``bench/record_startups.py``).

    ``time_budget_s``: a wall-clock budget, as ``tonesweep sweep --time-budget`` (``search.budget``): no
    trial starts after it, and a trial running then ends at the first step it ends after it, where the trainer
    reports at once (``train_trial``'s deadline), or after its first step if it was still starting
    (``TrialEnd.cut``), unless that step is its last (it finishes).

    A record drawn again (random search with replacement, or an Optuna suggestion mapped to a record tried
    before) reports its loss a hair worse per earlier draw (``REPEAT_TIE_BREAK``): a sweep never trains one
    configuration twice, and an exact copy would tie its first draw, so that every copy of a front record
    passed every rung of MO-ASHA kept-front.
    """
    sampler = make_sampler(strategy, records, seed, trials, workers, warm, min_rtf)
    decide, on_add = make_scheduler(strategy, steps, report_every)
    outcome, events, started = Outcome(workers=workers), [], 0
    begun: dict[str, tuple[float, int]] = {}  # trial id -> (start time, earlier draws of its record)
    draws: dict[int, int] = {}                # record -> times drawn
    worker_of: dict[str, int] = {}            # trial id -> the worker it runs on
    ran = [0] * workers                       # worker -> trials it has started
    budget = math.inf if time_budget_s is None else time_budget_s

    def start(now: float, worker: int) -> None:
        nonlocal started
        trial_id = f"t{started}"
        started += 1
        index = sampler.next(trial_id)
        on_add(trial_id)
        record = records[index]
        begun[trial_id] = (now, draws.get(index, 0))
        draws[index] = draws.get(index, 0) + 1
        fresh = ran[worker] % (trials_per_worker or math.inf) == 0
        worker_of[trial_id], ran[worker] = worker, ran[worker] + 1
        t0 = now + overhead_s + record.startup_s + (fresh_worker_s if fresh else 0.0)
        for step in range(report_every, steps, report_every):  # the trainable holds back the last report
            heapq.heappush(events, (t0 + step * record.seconds_per_step, trial_id, step, index))
        heapq.heappush(events, (t0 + steps * record.seconds_per_step + record.eval_s, trial_id, steps, index))
        if budget < math.inf:  # the trainer reports at the first step it ends after the budget (its deadline)
            step = max(1, math.ceil((budget - t0) / record.seconds_per_step))
            if step < steps and step % report_every:
                heapq.heappush(events, (t0 + step * record.seconds_per_step, trial_id, step, index))

    for worker in range(min(workers, trials)):
        start(0.0, worker)
    ended: set[str] = set()
    while events:
        now, trial_id, step, index = heapq.heappop(events)
        if trial_id in ended:
            continue
        record, (began, earlier) = records[index], begun[trial_id]
        result = {"step": step, "val_loss": record.loss_at(step) * (1.0 + REPEAT_TIE_BREAK * earlier),
                  "model_bytes": record.model_bytes, OBJECTIVE_SIZE: record.smallest_bytes}
        cut = step < steps and now >= budget  # the budget's stopper is asked before the scheduler
        if step < steps and not cut and decide(trial_id, result) != "STOP":
            continue
        ended.add(trial_id)
        outcome.ends.append(TrialEnd(now, index, step, step == steps, began, cut))
        outcome.wall_s = max(outcome.wall_s, now)
        sampler.tell(trial_id, {**result, "status": "FINISHED" if step == steps else None})
        if started < trials and now < budget:
            start(now, worker_of[trial_id])
    return outcome


# ---------------------------------------------------------------------------- scoring


class Scale:
    """Objectives normalised over a whole pool: log10 bytes and quality mapped to [0, 1] by the pool's
    best and worst candidates; the reference point is the pool's nadir plus 10 %. Fixed per pool, so
    every strategy and seed is scored on the same box (1 = a point at the ideal corner)."""

    def __init__(self, records: list[Record]):
        union = np.array([(math.log10(b), q) for r in records for b, q in r.candidates])
        self.low, high = union.min(axis=0), union.max(axis=0)
        self.span = np.where(high > self.low, high - self.low, 1.0)

    def hypervolume(self, candidates: list[tuple[float, float]]) -> float:
        from results.pareto import hypervolume_2d

        if not candidates:
            return 0.0
        points = (np.array([(math.log10(b), q) for b, q in candidates]) - self.low) / self.span
        return hypervolume_2d(points[:, 0], points[:, 1], 1.1, 1.1) / (1.1 * 1.1)

    def trajectory(self, outcome: Outcome, records: list[Record]) -> list[tuple[int, float, float]]:
        """(trial-steps used, wall seconds, hypervolume) after every trial's end."""
        out, used, candidates = [], 0, []
        for end in outcome.ends:
            used += end.steps
            if end.finished:
                candidates.extend(records[end.record].candidates)
            out.append((used, end.time, self.hypervolume(candidates)))
        return out


def at_budget(trajectory: list[tuple[int, float, float]], budget: float, axis: int = 0) -> float:
    """The hypervolume reached once ``budget`` trial-steps (axis 0) or seconds (axis 1) were used."""
    best = 0.0
    for point in trajectory:
        if point[axis] > budget:
            break
        best = point[2]
    return best


def winner(candidates: list[tuple[float, float]], tolerance: float = 0.05) -> tuple[float, float] | None:
    """The selector's smallest acceptable candidate (bytes, quality)."""
    from results.criteria import Criteria

    if not candidates:
        return None
    best = min(q for _, q in candidates)
    criteria = Criteria(tolerance)
    return min(((b, q) for b, q in candidates if criteria.accepts(q, best)), key=lambda c: (c[0], c[1]))


def front_records(outcome: Outcome, records: list[Record]) -> list[int]:
    """The finished trials with a candidate on the outcome's front (what a warm start reuses)."""
    from results.pareto import pareto_mask

    rows = [(i, b, q) for i in dict.fromkeys(outcome.finished()) for b, q in records[i].candidates]
    if not rows:
        return []
    mask = pareto_mask(np.array([r[1] for r in rows]), np.array([r[2] for r in rows]))
    return list(dict.fromkeys(rows[k][0] for k in np.flatnonzero(mask)))

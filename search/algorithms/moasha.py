"""Multi-objective ASHA: early stopping that keeps the size-quality front, a Ray Tune ``TrialScheduler``.

ASHA (Li et al., MLSys 2020) stops a trial at a rung when its metric is not in the top 1/eta of the
trials recorded at that rung. On ``val_loss`` alone that stops exactly the small models a size-vs-
quality search wants: they learn slower and sit low at every rung. Multi-objective ASHA (Schmucker
et al. 2021; Salinas et al. 2021; Syne Tune's ``MOASHA`` is the reference implementation) ranks a
rung by non-dominated sorting over several objectives instead. Here the objectives are the model's
size (``OBJECTIVE_SIZE``, the bundle's bytes at uint8, reported by the trainable, known exactly before
training, so the same at every rung) and ``val_loss`` at that rung, both minimised.

Rule at a rung (once per trial, when it first reaches the rung's milestone; decisions are final, a
promoted trial is never re-judged): the trial's results at the rung are recorded; all recorded
trials are ordered by ``results.pareto.preference_order`` (non-dominated rank, then NSGA-II
crowding distance within the rank, larger first, then arrival order); the trial continues when its
position is within the first ``ceil(n / eta)`` of the ``n`` recorded, or when it is the first to
arrive. So the smallest model of a rung is always on its front (nothing smaller dominates it), and a
dominated model stops whenever the front alone fills the promotion quota. The tie-break inside the
last admitted rank is crowding distance: the extremes of the front (smallest, lowest loss) always
survive, then the most isolated points, which keeps the front spread across sizes. With ``keep_front``
(off by default here; the sweep's default turns it on, ``search.settings``), a trial on the rung's front so
far continues even outside the quota (``promote``).

A trial without finite objectives (failed, rejected: no ``val_loss``) is never recorded, so it never
blocks a rung. Ray Tune does not save a scheduler's state with its experiment, so this scheduler
writes its rungs to ``state_path`` (JSON, atomically) after every decision and reads them back when
Ray unpickles it on ``Tuner.restore``: a resumed sweep keeps its rungs and judges no trial twice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from results.pareto import pareto_mask, preference_order
from search.algorithms import OBJECTIVE_SIZE
from common.files import write_json_atomic
from common.values import finite

STATE_FORMAT = "tonesweep-moasha/1"


def rung_milestones(grace_period: int, max_t: int, reduction_factor: float) -> list[int]:
    """ASHA's rungs: grace * eta^k below max_t (the last step is the trial's end, not a rung)."""
    milestones, t = [], float(grace_period)
    while t < max_t:
        milestones.append(int(round(t)))
        t *= reduction_factor
    return milestones


def promote(recorded: dict[str, tuple[float, float]], trial_id: str, reduction_factor: float,
            keep_front: bool = False) -> bool:
    """Whether ``trial_id`` (already in ``recorded``: id -> (bytes, loss), in arrival order) survives.

    ``keep_front``: a trial on the rung's front so far (nothing recorded there is both smaller and
    better) survives even outside the quota. While few trials have reached a rung the quota is one
    (``ceil(n / eta)``), so a second front member loses the arrival-order tie and stops: often the
    small, slow-learning model that a size-quality search is after (bench/README.md, "Which search
    decides the default": the replay's evidence).
    """
    ids = list(recorded)
    if len(ids) == 1:
        return True
    sizes = np.array([recorded[i][0] for i in ids], dtype=float)
    losses = np.array([recorded[i][1] for i in ids], dtype=float)
    position = ids.index(trial_id)
    if keep_front and pareto_mask(sizes, losses)[position]:
        return True
    order = preference_order(sizes, losses)
    quota = math.ceil(len(ids) / reduction_factor)
    return position in set(order[:quota].tolist())


class MOASHAScheduler(FIFOScheduler):
    """Ray Tune scheduler: multi-objective ASHA over (``size_metric``, ``metric``), both minimised."""

    def __init__(self, time_attr: str = "step", metric: str = "val_loss", size_metric: str = OBJECTIVE_SIZE,
                 max_t: int = 100, grace_period: int = 1, reduction_factor: float = 3,
                 state_path: str | None = None, keep_front: bool = False):
        if not (0 < grace_period <= max_t and reduction_factor > 1):
            raise ValueError("need 0 < grace_period <= max_t and reduction_factor > 1")
        super().__init__()
        self._metric, self._mode = metric, "min"  # what Ray reads off a scheduler
        self.time_attr, self.objective, self.size_metric = time_attr, metric, size_metric
        self.max_t, self.grace_period, self.reduction_factor = int(max_t), int(grace_period), float(reduction_factor)
        self.state_path, self.keep_front = state_path, keep_front
        self.milestones = rung_milestones(self.grace_period, self.max_t, self.reduction_factor)
        self.rungs: dict[int, dict[str, tuple[float, float]]] = {m: {} for m in self.milestones}
        self.decisions: dict[str, dict[int, str]] = {}  # trial id -> {milestone: CONTINUE | STOP}
        self._load()

    # ---- Ray Tune's scheduler hooks ----

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        return True  # the objectives are fixed at construction (size and val_loss, both minimised)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self.decide(trial.trial_id, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self.decide(trial.trial_id, result or {})  # records a last rung reached by the final result

    def on_trial_error(self, tune_controller, trial) -> None:
        pass  # nothing recorded for it blocks anything: rungs never wait for a trial

    def on_trial_remove(self, tune_controller, trial) -> None:
        pass

    def debug_string(self) -> str:
        counts = ", ".join(f"{m}: {len(r)}" for m, r in self.rungs.items())
        return f"MO-ASHA rungs (step: trials recorded) {counts}"

    # ---- the rule, callable without Ray ----

    def decide(self, trial_id: str, result: dict[str, Any]) -> str:
        """CONTINUE or STOP for a result; records the trial at the highest rung it newly reached."""
        step, size, loss = (finite(result.get(k)) for k in (self.time_attr, self.size_metric, self.objective))
        if step is None or size is None or loss is None:
            return TrialScheduler.CONTINUE
        reached = [m for m in self.milestones if step >= m and trial_id not in self.rungs[m]]
        if not reached:
            return TrialScheduler.CONTINUE
        action = TrialScheduler.CONTINUE
        for milestone in reached:  # normally one; several if a resumed trial skipped a report
            recorded = self.rungs[milestone]
            recorded[trial_id] = (size, loss)
            survives = promote(recorded, trial_id, self.reduction_factor, self.keep_front)
            verdict = TrialScheduler.CONTINUE if survives else TrialScheduler.STOP
            self.decisions.setdefault(trial_id, {})[milestone] = verdict
            if verdict == TrialScheduler.STOP:
                action = TrialScheduler.STOP
                break
        self._save()
        return action

    def best_by_rung(self) -> dict[int, float]:
        """The lowest ``val_loss`` recorded at each rung reached so far (what the demo prints)."""
        return {m: min(v[1] for v in r.values()) for m, r in self.rungs.items() if r}

    # ---- state: JSON beside the experiment, not pickle ----

    def get_state(self) -> dict:
        return {"format": STATE_FORMAT, "milestones": self.milestones,
                "rungs": {str(m): {t: list(v) for t, v in r.items()} for m, r in self.rungs.items()},
                "decisions": {t: {str(m): d for m, d in ds.items()} for t, ds in self.decisions.items()}}

    def set_state(self, state: dict) -> None:
        if state.get("format") != STATE_FORMAT or state.get("milestones") != self.milestones:
            return  # another scheduler's (or another budget's) rungs: start fresh
        self.rungs = {m: {t: tuple(v) for t, v in state["rungs"].get(str(m), {}).items()} for m in self.milestones}
        self.decisions = {t: {int(m): d for m, d in ds.items()} for t, ds in state["decisions"].items()}

    def _save(self) -> None:
        if self.state_path:
            Path(self.state_path).parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.state_path, self.get_state(), indent=None)

    def _load(self) -> None:
        if self.state_path and Path(self.state_path).is_file():
            self.set_state(json.loads(Path(self.state_path).read_text()))

    def __getstate__(self) -> dict:
        return {"args": (self.time_attr, self.objective, self.size_metric, self.max_t, self.grace_period,
                         self.reduction_factor, self.state_path, self.keep_front), "state": self.get_state()}

    def __setstate__(self, pickled: dict) -> None:
        # a sweep pickled before keep_front has 7 args: the quota alone; reloads state_path when it exists
        self.__init__(*pickled["args"])  # (a resumed sweep) ...
        if not (self.state_path and Path(self.state_path).is_file()):
            self.set_state(pickled["state"])  # ... else what was pickled


def rung_summary(state_path: str | Path) -> dict[int, tuple[int, float]]:
    """{milestone step: (trials recorded, best val_loss)} from a saved MO-ASHA state ({} if none)."""
    try:
        state = json.loads(Path(state_path).read_text())
    except (OSError, ValueError):
        return {}
    if state.get("format") != STATE_FORMAT:
        return {}
    return {int(m): (len(r), min(v[1] for v in r.values())) for m, r in state["rungs"].items() if r}



"""What every tonesweep searcher shares: the Ray Tune ``Searcher`` contract around a search engine.

An adapter (``kerastuner_searcher``, ``optuna_searcher``, the next one) implements only how it asks its
engine for a trial, tells it how a trial ended, and saves and restores the engine's state
(KerasTuner's ``Oracle`` base works the same way: the base runs trials, ``populate_space`` is the hook):

====================================  ================================================================
``TrialSearcher`` (here)              the adapter
====================================  ================================================================
``suggest``: the budget, the          ``_ask(trial_id)`` -> values, ``None`` (ask again later) or
concurrency gate, the same answer     ``FINISHED`` (the engine has nothing left)
when asked twice for one trial,
refusals and redraws                  ``_decline(trial_id, refusal)``: the draw is infeasible
warm starts                           ``_ask_given(trial_id, values)``: an engine trial with these values
``on_trial_result``                   ``_observe(trial_id, result)`` (default: nothing)
``on_trial_complete``: once per       ``_tell(trial_id, result, error)``
trial, never for unknown ids
``save`` / ``restore``: JSON,         ``_engine_state()`` / ``_load_engine(state)``, JSON-safe
atomic; pickling goes through it
====================================  ================================================================

**Refusals.** A drawn configuration that the sweep's limits refuse (``refuse``, e.g. too large for
``--max-bytes``, known before training) is declined to the engine, which learns that the draw is
infeasible (Optuna: a constraint violation; KerasTuner: a failed trial), and the searcher draws again
for the same trial slot: ``max_trials`` counts configurations that train. After ``MAX_REDRAWS``
refusals in a row the searcher answers ``FINISHED`` and says why (``exhausted``).

Why the concurrency gate is here and not Ray's ``ConcurrencyLimiter``: that wrapper does not save
its live-trial set, so after ``Tuner.restore`` it silently drops the completion of every trial that
was running at the crash, and the engine would never hear of them.

**Warm starts.** ``warm_start`` values (``tonesweep sweep --warm-start``: the configurations on the
fronts of earlier sweeps) are suggested first, each as a trial of the engine's own (Optuna: an
enqueued trial; KerasTuner: a trial the oracle did not draw), so the engine learns from them as from
its own draws; refusals apply to them as to any draw. The ones not yet suggested are in the state.

**The budget**, one rule for every engine: a searcher hands out at most ``max_trials`` suggestions
(``asked``). Ray saves its experiment state at most once a second, so a trial that ended in the second
before the driver was killed is in MLflow but not in the searcher's saved state. Before a resumed
``fit`` the sweep writes every trial id MLflow has seen into a ledger (``search.algorithms.ledger``);
``restore`` counts each id the searcher never suggested against the budget, once (the ids counted are
kept in the state, so a second resume does not count them again).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ray.tune.search import Searcher

from common.files import account_folder, write_json_atomic
from search.algorithms.ledger import unknown_ended
from search.algorithms.refusal import MAX_REDRAWS, Refusal
from spaces.translate import SearchSpace, values_to_config

FINISHED = Searcher.FINISHED


class TrialSearcher(Searcher):
    """A Ray Tune searcher over a tonesweep search space; subclasses adapt one search engine.

    Args:
        space: the search space (tuned ``HyperParameters`` + fixed values).
        algorithm: one of the subclass's ``ALGORITHMS``.
        max_trials: suggestions in all (the sweep's ``--trials``); then ``FINISHED``.
        seed: the engine's seed (same seed, same space -> same first suggestions).
        overrides: config values forced onto every suggestion (e.g. ``steps`` from ``--steps``).
        max_concurrent: suggestions running at once (0 = no limit).
        ledger_path: the ledger of trials MLflow saw end (read by ``restore``).
        metric, mode: what Ray reads off a searcher (the objective it reports as the trial's metric).
        refuse: a config -> ``Refusal`` or None (``search.limits.Feasibility``); None: run every draw.
            Pickled with the searcher, kept across ``set_state``; not part of the JSON state.
        warm_start: hyperparameter values to suggest first, in order (``spaces.translate.warm_values``).
        out_of_time: () -> True once the sweep's time budget has run out (``search.budget.OutOfTime``);
            then ``FINISHED``. Pickled with the searcher, like ``refuse``.
    """

    STATE_FORMAT = "tonesweep-searcher/1"
    ALGORITHMS: tuple[str, ...] = ()

    def __init__(self, space: SearchSpace, algorithm: str, max_trials: int = 10, seed: int = 0,
                 overrides: dict[str, Any] | None = None, max_concurrent: int = 0,
                 ledger_path: str | None = None, metric: str = "val_loss", mode: str = "min",
                 refuse: Callable[[dict], Refusal | None] | None = None, warm_start: list[dict] | None = None,
                 out_of_time: Callable[[], bool] | None = None):
        if algorithm not in self.ALGORITHMS:
            raise ValueError(f"algorithm must be one of {self.ALGORITHMS}, got {algorithm!r}")
        super().__init__(metric=metric, mode=mode)
        self.space, self.algorithm = space, algorithm
        self.max_trials, self.seed = int(max_trials), int(seed)
        self.overrides = dict(overrides or {})
        self.max_concurrent = int(max_concurrent)
        self.ledger_path = ledger_path
        self.refuse = refuse
        self.out_of_time = out_of_time
        self.refused = 0                       # draws declined (this searcher's life, state included)
        self.exhausted: str | None = None      # why the searcher stopped early, if it did
        self._asked = 0                        # suggestions handed out, plus trials counted from the ledger
        self._configs: dict[str, dict] = {}    # Ray trial id -> config handed to Ray
        self._live: set[str] = set()           # Ray trial ids suggested and not yet completed
        self._counted: set[str] = set()        # ledger ids counted against the budget by a restore
        self._warm: list[dict] = [dict(v) for v in warm_start or ()]  # values still to suggest first
        self._new_engine()

    # ---- the Ray Tune Searcher contract -------------------------------------------------------

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Limit concurrency here (see the module docstring for why not ConcurrencyLimiter)."""
        self.max_concurrent = int(max_concurrent)
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        """Config for Ray trial ``trial_id``; ``None`` = ask again later; ``FINISHED`` = done."""
        if trial_id in self._configs:  # asked twice for the same trial: same answer
            return dict(self._configs[trial_id])
        if self._asked >= self.max_trials or (self.out_of_time is not None and self.out_of_time()):
            return FINISHED
        if self.max_concurrent and len(self._live) >= self.max_concurrent:
            return None
        for _ in range(MAX_REDRAWS):
            values = self._ask_given(trial_id, self._warm.pop(0)) if self._warm else self._ask(trial_id)
            if values is None or values == FINISHED:
                return values
            config = values_to_config(values, self.space.fixed, self.overrides)
            refusal = self.refuse(config) if self.refuse is not None else None
            if refusal is None:
                break
            self._decline(trial_id, refusal)
            self.refused += 1
        else:
            self.exhausted = (f"the last {MAX_REDRAWS} configurations drawn were all refused "
                              f"(last: {refusal.reason})")
            return FINISHED
        self._asked += 1
        self._configs[trial_id] = config
        self._live.add(trial_id)
        return dict(config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._live:
            self._observe(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell the engine how the trial ended. Safe to call twice and for ids this searcher never suggested."""
        if trial_id not in self._live:
            return
        self._tell(trial_id, result or {}, error)
        self._live.discard(trial_id)

    def save(self, checkpoint_path: str) -> None:
        """Write the state as JSON, atomically (temp file + rename)."""
        path = Path(checkpoint_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.get_state(), indent=None)

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """What Ray calls every second: the state into Ray's experiment staging folder.

        Ray's own ``save_to_dir`` saves to a temporary file in that folder and renames it, while its
        background sync may be copying the folder to the storage path: a temporary file listed by
        the copy and gone before it was read failed the sync ("Saving experiment state to storage
        ... failed", a traceback in the user's terminal). Here the temporary file is written in a
        scratch folder of this account and moved in whole.
        """
        path = Path(checkpoint_dir) / self.CKPT_FILE_TMPL.format(session_str)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.get_state(), indent=None, temp_dir=account_folder("staging"))

    def restore(self, checkpoint_path: str) -> None:
        """Load the state written by ``save`` (replaces this searcher's whole state), then count the
        trials that ended after that state was saved against the budget (the module docstring)."""
        self.set_state(json.loads(Path(checkpoint_path).read_text()))
        unknown = unknown_ended(self.ledger_path, set(self._configs) | self._counted)
        self._asked += len(unknown)
        self._counted |= unknown

    # ---- state -------------------------------------------------------------------------------

    def get_state(self) -> dict:
        """JSON-safe state: the settings, the shared bookkeeping and the engine's own state."""
        return {"format": self.STATE_FORMAT, "space": self.space.to_json(), "algorithm": self.algorithm,
                "max_trials": self.max_trials, "seed": self.seed, "overrides": self.overrides,
                "max_concurrent": self.max_concurrent, "ledger_path": self.ledger_path,
                "metric": self.metric, "mode": self.mode, "asked": self._asked, "configs": self._configs,
                "live": sorted(self._live), "counted": sorted(self._counted), "refused": self.refused,
                "exhausted": self.exhausted, "warm": self._warm, **self._engine_state()}

    def set_state(self, state: dict) -> None:
        if state.get("format") != self.STATE_FORMAT:
            raise ValueError(f"not a {type(self).__name__} state (format {state.get('format')!r})")
        self.__init__(**self._settings(state), refuse=getattr(self, "refuse", None),
                      out_of_time=getattr(self, "out_of_time", None))
        self._configs = {k: dict(v) for k, v in state["configs"].items()}
        self.refused, self.exhausted = int(state.get("refused", 0)), state.get("exhausted")
        self._asked = int(state.get("asked", len(self._configs)))  # states before the base: one per config
        self._live = set(state["live"])
        self._counted = set(state.get("counted", ()))
        self._warm = [dict(v) for v in state.get("warm", ())]
        self._load_engine(state)

    def __getstate__(self) -> dict:
        # Ray pickles the searcher inside its Tuner: pickle the JSON state, never the engine object
        # (and the refusal and time checks, small objects of their own)
        return {**self.get_state(), "refuse": self.refuse, "out_of_time": self.out_of_time}

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        self.refuse = state.pop("refuse", None)
        self.out_of_time = state.pop("out_of_time", None)
        self.set_state(state)

    def _settings(self, state: dict) -> dict[str, Any]:
        """Constructor arguments from a saved state (a subclass adds its own)."""
        settings = {key: state[key] for key in ("algorithm", "max_trials", "seed", "overrides", "max_concurrent")}
        return {"space": SearchSpace.from_json(state["space"]), "ledger_path": state.get("ledger_path"), **settings}

    # ---- queries used by the sweep and the tests ---------------------------------------------

    def live_trials(self) -> set[str]:
        return set(self._live)

    def config_of(self, trial_id: str) -> dict:
        return dict(self._configs[trial_id])

    # ---- the adapter's hooks -----------------------------------------------------------------

    def _new_engine(self) -> None:
        """Build the engine from the settings (called by ``__init__`` and on every restore)."""
        raise NotImplementedError

    def _ask(self, trial_id: str) -> dict | str | None:
        """Hyperparameter values for a new trial, ``None`` (ask again later) or ``FINISHED``."""
        raise NotImplementedError

    def _ask_given(self, trial_id: str, values: dict) -> dict | str | None:
        """Like ``_ask``, but the engine's trial takes ``values`` (a warm start) instead of drawing."""
        raise NotImplementedError

    def _decline(self, trial_id: str, refusal: Refusal) -> None:
        """The values ``_ask`` just gave for ``trial_id`` are refused: end that draw in the engine as
        infeasible (``trial_id`` is asked again)."""
        raise NotImplementedError

    def _observe(self, trial_id: str, result: dict) -> None:
        """An intermediate result of a live trial (engines that learn from curves use it)."""

    def _tell(self, trial_id: str, result: dict, error: bool) -> None:
        """The live trial ended: ``result`` is its last result (``status`` FINISHED/FAILED/REJECTED,
        or none of those when the scheduler stopped it); ``error``: it raised past the trainable."""
        raise NotImplementedError

    def _engine_state(self) -> dict:
        """The engine's own state, JSON-safe, merged into ``get_state``."""
        raise NotImplementedError

    def _load_engine(self, state: dict) -> None:
        """Restore the engine from a ``get_state`` dict (the settings are already in place)."""
        raise NotImplementedError


def jsonable(obj: Any) -> Any:
    """Round-trip through JSON (numpy scalars -> Python), failing loudly on anything else."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))

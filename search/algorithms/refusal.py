"""A drawn configuration that is not run: too large or too slow for the sweep's limits, which is known
before training. The searcher tells its engine the draw was infeasible and draws again; the trial
slot is not spent (``search.algorithms.base``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

# Refused draws in a row after which a searcher concludes that its feasible space ran out (a random
# draw from a space where 1 % of the configurations fit the limits passes within 100 with p = 0.63;
# the engines that learn from refusals need fewer).
MAX_REDRAWS = 200


@dataclass(frozen=True)
class Refusal:
    """Why a configuration is refused, how far it is past a limit (relative, > 0: Optuna's constraint
    value), and the objectives known of it before training (``search.limits.size_metrics``)."""

    reason: str
    violation: float
    objectives: Mapping[str, float] = field(default_factory=dict)

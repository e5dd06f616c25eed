"""Registry: champion alias moves with new settings, history kept, identical re-selection reused."""

import random

from mlflow import MlflowClient

from results.synthetic import log_sweep, synthetic_trial
from results.registry import champion, register_winner
from results.select import Criteria, select_smallest
from results.table import load_table
from support.stores import sqlite_store


def test_alias_moves_and_keeps_history(tmp_path):
    client = MlflowClient(tracking_uri=sqlite_store(tmp_path / "mlflow.db"))
    rng = random.Random(5)
    log_sweep(client, "sitar", "s", [synthetic_trial(rng) for _ in range(12)])
    sweep, table = load_table(client, "sitar")
    assert champion(client, "sitar") is None

    tight = select_smallest(table, Criteria(0.0))
    first = register_winner(client, tight, sweep.name)
    again = register_winner(client, tight, sweep.name)
    assert first.created and not again.created and again.version == first.version

    loose = select_smallest(table, Criteria(1.0))
    second = register_winner(client, loose, sweep.name)
    assert second.created and second.version != first.version
    current = champion(client, "sitar")
    assert str(current.version) == second.version and current.tags["tolerance"] == "1.0"
    assert current.tags["run_id"] == loose.winner["run_id"] and current.source.endswith("/trial")
    assert len(client.search_model_versions("name = 'tonesweep-sitar'")) == 2  # history kept
    # the champion's trial run is marked (a tag the runs table can show), and only that run
    marked = {r.info.run_id: r.data.tags.get("tonesweep.champion")
              for r in client.search_runs([sweep.experiment_id]) if r.data.tags.get("tonesweep.champion")}
    assert marked == {loose.winner["run_id"]: f"{loose.winner['precision']}, models:/tonesweep-sitar@champion v{second.version}"}
    if tight.winner["run_id"] != loose.winner["run_id"]:  # the first winner's run lost its mark when the alias moved
        assert tight.winner["run_id"] not in marked

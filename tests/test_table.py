"""Table from synthetic MLflow runs (temp SQLite store, §3 layout) and the `tonesweep pareto` JSON output."""

import json
import math
import random

import pytest
from mlflow import MlflowClient

from results.synthetic import log_sweep, synthetic_trial
from results.table import load_table
from cli.main import main
from common.errors import UserError
from support.stores import sqlite_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = sqlite_store(tmp_path_factory.mktemp("mlflow") / "mlflow.db")
    client = MlflowClient(tracking_uri=uri)
    rng = random.Random(3)
    log_sweep(client, "flute", "old", [synthetic_trial(rng) for _ in range(3)])
    trials = [synthetic_trial(rng, s) for s in ["FINISHED"] * 5 + ["FAILED", "REJECTED", "STOPPED", "RUNNING"]]
    trials[1]["metrics"]["quality_uint8"] = math.nan
    log_sweep(client, "flute", "new", trials, parent_status="RUNNING")
    return uri, client


def test_rows_statuses_and_latest_sweep(store):
    _, client = store
    sweep, table = load_table(client, "flute")
    assert sweep.name == "new" and len(table) == 9 * 3
    assert table.drop_duplicates("run_id")["status"].value_counts().to_dict() == {
        "FINISHED": 5, "FAILED": 1, "REJECTED": 1, "STOPPED": 1, "RUNNING": 1}
    assert table["candidate"].sum() == 5 * 3 - 1  # the NaN uint8 quality is kept but not a candidate
    assert {"decoder", "feature", "hidden", "bytes", "quality", "precision"} <= set(table.columns)
    assert table["hidden"].dtype.kind in "if"


def test_unknown_names_list_what_exists(store):
    _, client = store
    with pytest.raises(UserError, match="known instruments: flute"):
        load_table(client, "oboe")
    with pytest.raises(UserError, match="new, old"):
        load_table(client, "flute", "nope")


def test_pareto_json_schema(store, tmp_path, capsys):
    uri, _ = store
    code = main(["pareto", "--instrument", "flute", "--format", "json", "--tracking-uri", uri,
                 "--plot", str(tmp_path / "p.png"), "--no-register"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and (tmp_path / "p.png").exists()
    assert set(doc) == {"instrument", "sweep", "tolerance", "best", "winner", "front", "hypervolume"}
    for cand in doc["front"] + [doc["winner"], doc["best"]]:
        assert {"run_id", "precision", "bytes", "params", "quality", "decoder", "feature"} <= set(cand)
    assert doc["hypervolume"] > 0 and doc["sweep"] == "new"

"""Search spaces: the built-in space, TOML space files and the pure HP ↔ config translation."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_tuner as kt
import pytest

from spaces import CONFIG_KEYS, config_to_values, default_space, discrete_size, load_space, values_to_config
from spaces.toml_space import parse_space
from trainers.model.config import CNN_ONLY, DEFAULTS, GRU_ONLY, validate_config
from common.errors import UserError
from trainers.model.size import count_params


def sample_configs(space, n, seed=0):
    """n random configs from a space, drawn the way KerasTuner's random oracle draws them."""
    oracle = kt.oracles.RandomSearchOracle(objective="val_loss", max_trials=n, seed=seed,
                                           hyperparameters=space.hyperparameters.copy())
    configs = []
    for _ in range(n):
        values = oracle._random_values()  # the sampler RandomSearchOracle.populate_space uses
        configs.append(values_to_config(values, space.fixed))
    return configs


def test_config_keys_match_the_trainer_contract():
    assert set(CONFIG_KEYS) == set(DEFAULTS)


def test_default_space_is_large_and_spans_both_decoders_and_features():
    space = default_space("bansuri")
    assert discrete_size(space.hyperparameters) >= 200
    configs = sample_configs(space, 200)
    assert {(c["decoder"], c["feature"]) for c in configs} == {
        ("gru", "loudness"), ("gru", "rms"), ("cnn", "loudness"), ("cnn", "rms")}
    assert {c["frame_rate"] for c in configs} == {50, 250}


def test_conditional_parameters_exist_only_for_their_decoder():
    for config in sample_configs(default_space(), 100, seed=3):
        other = CNN_ONLY if config["decoder"] == "gru" else GRU_ONLY
        assert not set(other) & set(config), config
        validate_config(config)  # every sample is a valid trainer config


def test_default_space_sizes_run_from_thousands_to_tiny_instrument():
    params = [count_params(c) for c in sample_configs(default_space(), 300, seed=1)]
    assert min(params) < 10_000
    # ddsp's tiny_instrument has ~232 k parameters (docs/references.md)
    assert 150_000 < max(params) <= 240_000


def test_translation_round_trip_keeps_only_active_values():
    space = default_space()
    values = {"decoder": "cnn", "feature": "rms", "frame_rate": 50, "conv_channels": 8, "conv_layers": 3,
              "conv_stacks": 1, "conv_kernel": 3, "causal": True, "n_harmonics": 16, "n_noise_bands": 16,
              "learning_rate": 1e-3}
    config = values_to_config(values, fixed={"batch_size": 4, "steps": 50}, overrides={"steps": 10})
    assert config["steps"] == 10 and config["batch_size"] == 4
    assert config_to_values({**config, "gru_units": 64}, space.hyperparameters) == values


def test_discrete_size_counts_conditional_branches_separately():
    hp = kt.HyperParameters()
    hp.Choice("decoder", ["gru", "cnn"])
    with hp.conditional_scope("decoder", ["gru"]):
        hp.Choice("gru_units", [16, 32, 64])
    with hp.conditional_scope("decoder", ["cnn"]):
        hp.Boolean("causal")
    hp.Float("learning_rate", 1e-4, 1e-2)
    assert discrete_size(hp) == 3 + 2


GOOD_TOML = """
[hyperparameters.decoder]
type = "choice"
values = ["gru", "cnn"]

[hyperparameters.gru_units]
type = "choice"
values = [16, 32]
when = { decoder = ["gru"] }

[hyperparameters.conv_layers]
type = "int"
min = 2
max = 4
when = { decoder = "cnn" }

[hyperparameters.learning_rate]
type = "float"
min = 1e-4
max = 1e-2
sampling = "log"

[hyperparameters.causal]
type = "boolean"

[fixed]
batch_size = 4
steps = 20
"""


def test_toml_space_loads(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(GOOD_TOML)
    space = load_space(path)
    assert space.fixed == {"batch_size": 4, "steps": 20}
    assert discrete_size(space.hyperparameters) == 2 * 2 + 3 * 2
    for config in sample_configs(space, 30):
        assert ("gru_units" in config) == (config["decoder"] == "gru")
        assert ("conv_layers" in config) == (config["decoder"] == "cnn")
        assert config["steps"] == 20


@pytest.mark.parametrize("text, expected", [
    ("[hyperparameters.decoder\ntype = 'choice'", "not valid TOML"),
    ("[hyperparameters.dropout]\ntype = 'float'\nmin = 0.0\nmax = 0.5", "dropout: unknown hyperparameter"),
    ("[fixed]\nwidth = 3\n[hyperparameters.hidden]\ntype='int'\nmin=1\nmax=2", "width: unknown hyperparameter"),
    ("[hyperparameters.hidden]\ntype = 'int'\nmin = 8", "hyperparameters.hidden.max: missing"),
    ("[hyperparameters.hidden]\ntype = 'range'", "hyperparameters.hidden.type"),
    ("[hyperparameters.hidden]\ntype = 'int'\nmin = 8\nmax = 4", "hyperparameters.hidden"),
    ("[hyperparameters.hidden]\ntype = 'choice'\nvalues = [8]\nstep = 2", "hyperparameters.hidden.step"),
    ("[hyperparameters.gru_units]\ntype = 'choice'\nvalues = [8]\nwhen = { decoder = ['gru'] }",
     "decoder is not declared above it"),
    ("[hyperparameters.hidden]\ntype = 'choice'\nvalues = [8]\n[fixed]\nhidden = 4", "both tuned and fixed"),
    ("[search]\nx = 1", "unknown table [search]"),
    ("", "no [hyperparameters.NAME] tables"),
])
def test_bad_toml_space_is_one_line_user_error(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_space(path)
    message = str(info.value)
    assert expected in message
    assert str(path) in message and "\n" not in message


def test_missing_space_file_is_user_error(tmp_path):
    with pytest.raises(UserError, match="space file not found"):
        load_space(tmp_path / "nope.toml")


def test_space_json_round_trip_keeps_conditions():
    space = parse_space({"hyperparameters": {
        "decoder": {"type": "choice", "values": ["gru", "cnn"]},
        "gru_units": {"type": "choice", "values": [16, 32], "when": {"decoder": ["gru"]}}}})
    state = space.to_json()
    again = type(space).from_json(state)
    again_twice = type(space).from_json(state)  # from_json must not consume its input
    for copy in (again, again_twice):
        assert discrete_size(copy.hyperparameters) == 3


def test_warm_values_keep_what_the_space_can_draw():
    from spaces import default_space
    from spaces.translate import warm_values

    space = default_space()
    cnn = {"decoder": "cnn", "feature": "rms", "frame_rate": 50, "conv_channels": 8, "conv_layers": 3, "conv_stacks": 1,
           "conv_kernel": 5, "causal": True, "n_harmonics": 32, "n_noise_bands": 32, "learning_rate": 0.001,
           "gru_units": 64, "batch_size": 8, "steps": 150, "seed": 3}
    kept = warm_values([cnn, dict(cnn), {**cnn, "conv_channels": 7}, {**cnn, "decoder": "transformer"},
                        {**cnn, "learning_rate": 5.0}, {**cnn, "conv_channels": 16}], space, limit=5)
    # inactive (gru_units) and untuned (batch_size, steps, seed) keys dropped; duplicates, values outside
    # their domain and an unknown decoder left out
    assert [v["conv_channels"] for v in kept] == [8, 16]
    assert "gru_units" not in kept[0] and "steps" not in kept[0] and kept[0]["learning_rate"] == 0.001
    assert warm_values([cnn, {**cnn, "conv_channels": 16}], space, limit=1) == kept[:1]

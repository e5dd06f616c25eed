"""Trial configuration: defaults, validation errors name the field, TOML loading. No TensorFlow."""

from __future__ import annotations

import pytest

from trainers.model.config import DEFAULTS, ConfigError, load_config_file, validate_config
from common.errors import UserError


def test_empty_config_gets_every_default():
    assert validate_config({}) == DEFAULTS


def test_validate_does_not_mutate_input_and_normalizes_types():
    raw = {"steps": 10.0, "learning_rate": 1, "decoder": "cnn"}
    cfg = validate_config(raw)
    assert raw == {"steps": 10.0, "learning_rate": 1, "decoder": "cnn"}
    assert cfg["steps"] == 10 and isinstance(cfg["steps"], int)
    assert cfg["learning_rate"] == 1.0 and isinstance(cfg["learning_rate"], float)


@pytest.mark.parametrize(
    "cfg, field",
    [
        ({"decoder": "lstm"}, "decoder"),
        ({"feature": "mfcc"}, "feature"),
        ({"frame_rate": 100}, "frame_rate"),
        ({"frame_rate": True}, "frame_rate"),
        ({"hidden": 0}, "hidden"),
        ({"gru_units": 2.5}, "gru_units"),
        ({"n_harmonics": "60"}, "n_harmonics"),
        ({"steps": 0}, "steps"),
        ({"batch_size": True}, "batch_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"reverb": "yes"}, "reverb"),
        ({"causal": 1}, "causal"),
        ({"reverb_seconds": 10.0}, "reverb_seconds"),
        ({"conv_kernel": 0}, "conv_kernel"),
        ({"n_noise_bandz": 65}, "n_noise_bandz"),
        ({"crop_seconds": -1.0}, "crop_seconds"),
        ({"crop_seconds": float("nan")}, "crop_seconds"),
        ({"crop_seconds": True}, "crop_seconds"),
    ],
)
def test_invalid_values_name_the_field(cfg, field):
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert str(err.value).startswith(f"{field}:")
    assert isinstance(err.value, UserError)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="unknown hyperparameter; valid keys are decoder, feature"):
        validate_config({"dropout": 0.1})


def test_not_a_dict_is_rejected():
    with pytest.raises(ConfigError, match="expected a table"):
        validate_config([("decoder", "gru")])


def test_toml_file_loads_and_validates(tmp_path):
    path = tmp_path / "trial.toml"
    path.write_text('decoder = "cnn"\nconv_channels = 8\ncausal = true\nsteps = 5\n')
    cfg = load_config_file(path)
    assert (cfg["decoder"], cfg["conv_channels"], cfg["causal"], cfg["steps"]) == ("cnn", 8, True, 5)


def test_toml_errors_name_file_and_field(tmp_path):
    bad_value = tmp_path / "bad.toml"
    bad_value.write_text("n_harmonics = -3\n")
    with pytest.raises(ConfigError, match=r"bad.toml: n_harmonics: -3 is out of range"):
        load_config_file(bad_value)
    broken = tmp_path / "broken.toml"
    broken.write_text("decoder = \n")
    with pytest.raises(UserError, match=r"broken.toml: not valid TOML"):
        load_config_file(broken)
    with pytest.raises(UserError, match="config file not found"):
        load_config_file(tmp_path / "missing.toml")

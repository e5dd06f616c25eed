"""Search spaces as KerasTuner ``HyperParameters`` and their translation to trainer configs.

- ``default_space()``: the built-in GRU/CNN × loudness/RMS space;
- ``load_space(path)``: a space from a TOML file (one-line ``UserError`` on any problem);
- ``values_to_config`` / ``config_to_values``: pure HP values ↔ flat trainer config dict.
"""

from spaces.default import default_space
from spaces.toml_space import load_space
from spaces.translate import CONFIG_KEYS, SearchSpace, config_to_values, discrete_size, possible_values, values_to_config

__all__ = ["CONFIG_KEYS", "SearchSpace", "config_to_values", "default_space", "discrete_size",
           "load_space", "possible_values", "values_to_config"]

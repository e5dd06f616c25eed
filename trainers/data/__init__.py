"""Audio in, features and datasets out.

``dataset`` (format + light reading API) imports only numpy at the top; ``prepare`` (the
pipeline), ``features`` (pYIN, numba) and ``demo`` (fluidsynth) are imported where needed.
"""

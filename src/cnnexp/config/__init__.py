"""The run's settings: the typed schema and its one check, composing `conf/` with Hydra, the
overrides and key=value arguments users type."""

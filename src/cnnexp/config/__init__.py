"""The run's settings: the typed schema, its one check, the messages that name a bad key, older
records brought up to today's keys; composing `conf/` with Hydra, the overrides and key=value
arguments users type; your own network's settings and its dry forward on the meta device
(`own_network`)."""

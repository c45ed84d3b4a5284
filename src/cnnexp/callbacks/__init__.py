"""Lightning callbacks a run's trainer carries: per-epoch CSV and console lines, timing,
checkpoints in the run folder, lookahead weights, TensorBoard views (pictures: series as lines,
volumes as slice strips), reports to a search's study, early stopping on the run's monitor
(`early_stop`), system metrics (`system_metrics`)."""

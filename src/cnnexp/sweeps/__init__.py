"""What a sweep adds to single runs: folders named by the swept keys and resumed (`naming`), the
estimated total and ETAs (`estimate`), seed replicates and their intervals (`stats`), the summary
of every run's results (`report`: `collect` → `tables`, `plots`, `hparams_experiment`), and the Hydra callback that checks a sweep before any folder (`callback`)."""

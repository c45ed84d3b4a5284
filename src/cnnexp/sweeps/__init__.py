"""What a sweep adds to single runs: folders named by the swept keys (`naming`), a recorded sweep
launched again into its folder (`relaunch`), the estimated total and ETAs (`eta`), seed
replicates and their intervals (`stats`), the summary of every run's results (`summarize`: `collect`
→ `replicates` → `tables`, `plots`, `hparams_experiment`), the settings of a grid that cannot
work, said before launch (`refusals`), and the Hydra callback that checks a sweep before any
folder (`callback`)."""

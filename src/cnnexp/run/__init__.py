"""One run top to bottom (`lifecycle`): the check before any folder (`preflight`), what it writes
as it starts (`start`: with what produced it, `provenance`), fit and test (`fit`) with its trainer
(`trainer`), how it ended (`outcome`); resume, restoring a finished run, cores and memory, SLURM."""

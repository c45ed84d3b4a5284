"""One run top to bottom: its lifecycle, the trainer, resume, restoring a finished run, cores and
memory, SLURM."""

"""Lightning callbacks: per-epoch CSV, timing, checkpoints in the run folder, TensorBoard views."""

"""Lightning callbacks: per-epoch CSV, throughput and timing, TensorBoard views."""

"""Where a run is watched: TensorBoard's names, events and HParams; MLflow; W&B (`wandb_run`)."""

"""Where a run is watched: TensorBoard's names, events and HParams; MLflow."""

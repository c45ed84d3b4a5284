"""`hydra/sweeper=optuna`: cnnexp's Optuna sweeper, found by Hydra's plugin scan of `hydra_plugins`."""

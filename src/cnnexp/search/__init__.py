"""The Optuna search: its options, space and study, the slots its trials run in, its report."""

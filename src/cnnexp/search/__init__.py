"""The Optuna search: its options stated once (`options`), the space and its points (`space`),
the study and its storage (`study`), what its trials say (`trials`), one worker's loop (`loop`),
the slots its trials run in (`slots`), its report (`report`); with several objectives, what each
is and the front's arithmetic (`objectives`), the front printed and drawn (`pareto`)."""

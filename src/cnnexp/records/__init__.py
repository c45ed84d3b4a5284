"""The run folder and its records: the only place that knows their file names, statuses and
checkpoint paths; everyone above asks it. A run's provenance read and set side by side (`provenance`)."""

"""What a sweep adds to single runs: run folders named by the swept keys (`naming`) and the
table of every run's results at the end (`summary`)."""

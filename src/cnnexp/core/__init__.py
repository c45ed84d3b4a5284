"""What everything stands on: errors and the one way to fail, atomic files, the console's format,
stop signals, folder locks, the one PNG writer, and the task catalogue. No torch, no Hydra."""

"""Seconds before a run: the machine's calibration and the estimates read from the shape plan."""

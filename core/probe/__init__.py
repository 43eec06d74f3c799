"""Measuring instead of guessing: a few steps of the real run (`run.probe`), and the fit frontier
found by at most three of them (`frontier.find_frontier`). Issue 16; ARCHITECTURE.md, "Probe"."""

"""One module per screen: catalog, plan, live, runs (with a run's record) and compare."""

"""Planning before launch: the model registry, the per-card memory model, verdicts and data advice."""

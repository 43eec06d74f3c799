"""Turning a recipe into a running job: backends render argv/env/files, the supervisor runs them."""

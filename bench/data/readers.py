"""Readers of the original and user formats (placeholder, being written)."""


def read_molecules(path, on_error="raise"):
    raise NotImplementedError

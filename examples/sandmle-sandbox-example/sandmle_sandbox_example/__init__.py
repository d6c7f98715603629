"""A minimal sandbox: a temporary folder and a python subprocess (trusted code only)."""

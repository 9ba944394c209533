"""The bench's scaling program (a package only so that its __main__ has a name of its own for mypy)."""

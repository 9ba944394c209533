"""A stack's settings: declared in `model`, read and checked in `load`, turned into component Args in `args`.

This package imports nothing heavy itself, so `delivery/` can use `settings.stack_files` alone.
"""

PROJECT = "hello-world"
"""The Pulumi project: the prefix of every setting (``hello-world:<key>``)."""

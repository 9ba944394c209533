"""A stack's settings: declared in `model`, read and checked in `load`, turned into component Args in `args`.

This package imports nothing heavy itself, so `ops/` can use `settings.stack_files` and
`settings.local_platform` alone.
"""

PROJECT = "hello-world"
"""The Pulumi project: the prefix of every setting (``hello-world:<key>``)."""
DEFAULT_BUILD_CONTEXT = "app"
"""The image's build context, relative to the project: the sample server and its Dockerfile."""

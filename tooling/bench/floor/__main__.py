"""An empty Pulumi program: what the CLI, the language host and the SDK cost before any resource."""

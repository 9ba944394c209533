"""The project's Pulumi policy pack: Kubernetes rules that every stack's resources must meet."""

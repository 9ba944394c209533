"""Delivery tools around the Pulumi program: promotion between stacks and review summaries."""

"""The app.kubernetes.io recommended labels, derived in one place for selectors and metadata."""

from __future__ import annotations

from dataclasses import dataclass

MANAGED_BY = "pulumi"


@dataclass(frozen=True, kw_only=True)
class AppLabels:
    """Labels of one instance of an application.

    The selector is a strict subset of the labels and never includes anything that
    changes between releases: a Deployment's selector is immutable, so a label that
    moves with the version would force a replacement on every rollout.
    """

    name: str
    """``app.kubernetes.io/name``: the application."""
    instance: str
    """``app.kubernetes.io/instance``: this installation of it (the stack)."""
    component: str = "web"
    """``app.kubernetes.io/component``. Default ``web``."""

    @property
    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/instance": self.instance}

    @property
    def all(self) -> dict[str, str]:
        return {
            **self.selector,
            "app.kubernetes.io/component": self.component,
            "app.kubernetes.io/managed-by": MANAGED_BY,
        }

"""Pulumi components of the hello-world service."""

from components.container_image import Builder, ContainerImage, ContainerImageArgs, RegistryArgs
from components.ingress import IngressArgs, RoutedServiceArgs
from components.labels import AppLabels
from components.pull_secret import PullSecretArgs
from components.verification import VerificationArgs
from components.web_service import ResourcesArgs, WebService, WebServiceArgs

__all__ = [
    "AppLabels",
    "Builder",
    "ContainerImage",
    "ContainerImageArgs",
    "IngressArgs",
    "PullSecretArgs",
    "RegistryArgs",
    "ResourcesArgs",
    "RoutedServiceArgs",
    "VerificationArgs",
    "WebService",
    "WebServiceArgs",
]

"""Pulumi components of the hello-world service."""

from components.container_image import Builder, ContainerImage, ContainerImageArgs, RegistryArgs
from components.labels import AppLabels
from components.pull_secret import PullSecretArgs
from components.verification import VerificationArgs
from components.web_service import IngressArgs, ResourcesArgs, RoutedServiceArgs, WebService, WebServiceArgs

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

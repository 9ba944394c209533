"""Pulumi components of the hello-world service."""

from components.container_image import Builder, ContainerImage, ContainerImageArgs, RegistryArgs
from components.labels import AppLabels
from components.web_service import IngressArgs, ResourcesArgs, WebService, WebServiceArgs

__all__ = [
    "AppLabels",
    "Builder",
    "ContainerImage",
    "ContainerImageArgs",
    "IngressArgs",
    "RegistryArgs",
    "ResourcesArgs",
    "WebService",
    "WebServiceArgs",
]

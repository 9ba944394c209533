"""The hello-world service: build (or take a promoted) image and run it on Kubernetes."""

import gc

import pulumi
import pulumi_kubernetes as k8s

from components import ContainerImage, WebService
from settings import PROJECT
from settings.args import image_args, provider_args, web_service_args
from settings.load import load_settings

# What the SDK, the Kubernetes types and the resources below make lives until the program ends. Frozen, it is
# no longer walked by each of Python's collections, nor at exit: 0.15 s of every preview and up (`make bench`).
gc.freeze()
settings = load_settings()

if (build := image_args(settings)) is not None:
    image_ref = ContainerImage("app", build).image_ref
else:
    image_ref = pulumi.Output.from_input(str(settings.image))

cluster = k8s.Provider("cluster", provider_args(settings))
service = WebService(PROJECT, web_service_args(settings, image_ref), pulumi.ResourceOptions(providers=[cluster]))
gc.freeze()

pulumi.export("imageRef", image_ref)
pulumi.export("namespace", service.namespace)
pulumi.export("serviceName", service.service_name)
pulumi.export("nodePort", service.node_port)
pulumi.export("clusterUrl", service.cluster_url)
pulumi.export("verifiedImageRef", service.verified_image_ref)
pulumi.export("verifiedAt", service.verified_at)
if service.ingress_url is not None:
    pulumi.export("ingressUrl", service.ingress_url)
if service.service_urls is not None:
    pulumi.export("serviceUrls", service.service_urls)

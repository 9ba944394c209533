"""The hello-world service: build (or take a promoted) image and run it on Kubernetes."""

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components import ContainerImage, ContainerImageArgs, RegistryArgs, WebService, WebServiceArgs
from settings import PROJECT, load_settings

settings = load_settings()

if settings.build is not None:
    build = settings.build
    image_ref = ContainerImage(
        "app",
        ContainerImageArgs(
            context=Path(build.context),
            repository=build.repository,
            registry=RegistryArgs(
                address=build.registry,
                username=build.username,
                password=pulumi.Output.secret(build.password.reveal()),
            ),
            builder=build.builder,
            tag=settings.stack,
            build_args={"BASE_IMAGE": build.base_image} if build.base_image else {},
            platform=build.platform,
            build_on_preview=build.build_on_preview,
        ),
    ).image_ref
else:
    assert settings.image is not None  # parse_settings guarantees exactly one of build and image
    image_ref = pulumi.Output.from_input(str(settings.image))

rendering = settings.cluster.render_to is not None
cluster = k8s.Provider(
    "cluster",
    # The provider refuses a kubeconfig in render mode: rendering never contacts a cluster.
    kubeconfig=None if rendering else settings.cluster.kubeconfig,
    context=None if rendering else settings.cluster.context,
    render_yaml_to_directory=settings.cluster.render_to,
)
service = WebService(
    PROJECT,
    WebServiceArgs(
        name=PROJECT,
        instance=settings.stack,
        namespace=settings.namespace,
        image=image_ref,
        replicas=settings.replicas,
        node_port=settings.node_port,
        resources=settings.resources,
        ingress=settings.ingress,
        rollout_timeout_seconds=settings.rollout_timeout_seconds,
    ),
    pulumi.ResourceOptions(providers=[cluster]),
)

pulumi.export("imageRef", image_ref)
pulumi.export("namespace", service.namespace)
pulumi.export("serviceName", service.service_name)
pulumi.export("nodePort", service.node_port)
pulumi.export("clusterUrl", service.cluster_url)
if service.ingress_url is not None:
    pulumi.export("ingressUrl", service.ingress_url)

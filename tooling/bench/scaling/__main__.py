"""N WebService components, each in a namespace of its own: how a preview grows with the program."""

import gc
import os
import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

# The program runs from its own folder; the components it times are the project's.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from components import WebService, WebServiceArgs

IMAGE = "127.0.0.1:5000/hello-world-bench@sha256:" + "0" * 64
"""Never pulled: the program is only previewed."""

# As the project's __main__.py does.
gc.freeze()
services = pulumi.Config().require_int("services")
if services < 1:
    raise ValueError(f"services must be at least 1, got {services}")
# The same provider settings as a stack of the project on the local platform.
cluster = k8s.Provider(
    "cluster", k8s.ProviderArgs(kubeconfig=os.environ["HELLO_KUBECONFIG"], enable_server_side_apply=False)
)
for index in range(services):
    WebService(
        f"svc-{index}",
        WebServiceArgs(name="hello-world", instance=f"s{index}", namespace=f"bench-scale-{index}", image=IMAGE),
        pulumi.ResourceOptions(providers=[cluster]),
    )
gc.freeze()

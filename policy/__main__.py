"""Serves the policy pack to the engine: `pulumi preview --policy-pack policy --policy-pack-config <file>`."""

import sys
from pathlib import Path

# The engine runs this folder as a script (`python policy/`), which puts policy/ itself on
# sys.path, not the project; the project root makes `policy.*` importable as in the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pulumi_policy import EnforcementLevel, Policy, PolicyPack

from policy.pack import PACK_NAME, POLICIES

policies: list[Policy] = [*POLICIES]
# Advisory unless the file given with --policy-pack-config says otherwise (policy/config/<stack>.json).
PolicyPack(PACK_NAME, policies, enforcement_level=EnforcementLevel.ADVISORY)

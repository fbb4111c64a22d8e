"""An Akool-compatible Audio API v3 server for demos and tests: real HTTP, state, lifecycle,
encrypted webhooks and injectable faults, on loopback. See sandbox/README.md."""

from sandbox.config import LifecycleConfig, SandboxConfig
from sandbox.faults import FaultRule
from sandbox.server import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SandboxServer
from sandbox.voices import OFFICIAL_VOICE_IDS, USER_VOICE_IDS, VOICES

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "OFFICIAL_VOICE_IDS",
    "USER_VOICE_IDS",
    "VOICES",
    "FaultRule",
    "LifecycleConfig",
    "SandboxConfig",
    "SandboxServer",
]

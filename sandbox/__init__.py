"""An Akool-compatible Audio API v3 and VoiceLab (v4) server for demos and tests: real HTTP,
state, lifecycle, encrypted webhooks and injectable faults, on loopback. See sandbox/README.md."""

from sandbox.config import LifecycleConfig, SandboxConfig
from sandbox.faults import FaultRule
from sandbox.plans import PLANS
from sandbox.server import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SandboxServer
from sandbox.v4voices import AKOOL_VOICES, OWN_VOICES, V4_VOICE_IDS
from sandbox.voices import OFFICIAL_VOICE_IDS, USER_VOICE_IDS, VOICES

__all__ = [
    "AKOOL_VOICES",
    "DEFAULT_API_KEY",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "OFFICIAL_VOICE_IDS",
    "OWN_VOICES",
    "PLANS",
    "USER_VOICE_IDS",
    "V4_VOICE_IDS",
    "VOICES",
    "FaultRule",
    "LifecycleConfig",
    "SandboxConfig",
    "SandboxServer",
]

"""The parser names each command's function by module and name, imported only when the command
runs: a name that does not resolve would fail only then, so every one is resolved here."""

from __future__ import annotations

import argparse
import importlib

from worker.cli.args import Command, parser


def _subcommands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _leaves(p: argparse.ArgumentParser, prefix: str = "") -> dict[str, object]:
    """Every command without subcommands of its own, with the function it runs."""
    found: dict[str, object] = {}
    for name, sub in _subcommands(p).items():
        if _subcommands(sub):
            found.update(_leaves(sub, f"{prefix}{name} "))
        else:
            found[prefix + name] = sub.get_default("func")
    return found


def test_every_command_runs_a_function_that_exists() -> None:
    # Given every command the parser knows, schedule's own included
    commands = _leaves(parser())
    assert {"voices", "create", "status", "web", "cancel", "schedule add"} <= set(commands)
    # Then each one runs a callable of its named module
    for name, command in commands.items():
        assert isinstance(command, Command), f"akool-audio {name}: {command!r}"
        target = getattr(importlib.import_module(command.module), command.name, None)
        assert callable(target), f"akool-audio {name}: {command.module}.{command.name}"

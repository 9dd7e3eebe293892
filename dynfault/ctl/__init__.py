"""Live control of running processes: a Unix socket per process, or a fleet through Redis.

`paths` (trust in a path), `untrusted` (reading what comes from outside: bounded JSON, field
checks, escaped text), `protocol` (the JSON request and reply), `server` and `client` (the
socket's two ends), `fleet` and `fleet_client` (the Redis transport's two ends). This module
only chooses between them, and imports neither until asked.
"""

from __future__ import annotations

__all__ = ["is_fleet", "start", "stop"]


def is_fleet(value: str) -> bool:
    """Does a DYNFAULT_CONTROL value name a Redis (the fleet) rather than a directory?"""
    return value.startswith(("redis://", "rediss://", "unix://"))


def start(value: str) -> None:
    """Serve DYNFAULT_CONTROL's value in this process from a daemon thread; never raises."""
    if is_fleet(value):
        from dynfault.ctl.fleet import join

        join(value)
    else:
        from dynfault.ctl.server import serve_from_environment

        serve_from_environment(value)


def stop() -> None:
    """Take this process out of control (`dynfault ctl` is a client, never a target)."""
    import sys

    server = sys.modules.get("dynfault.ctl.server")
    if server is not None:
        server.stop_serving()
    fleet = sys.modules.get("dynfault.ctl.fleet")
    if fleet is not None:
        fleet.leave()

"""Integration with Docker Engine: the ``docker`` sandbox, one locked-down container per session
(extra ``sandmle[docker]``; the image is built offline by ``scripts/docker-image.sh``).

Uses ``core`` and ``sandboxes`` (host-folder file API, stale-folder cleanup, result parsing).
"""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl


@hookimpl
def register_sandboxes(register: Any) -> None:
    from .sandbox import DockerSandboxConfig, make_docker

    register("docker", make_docker, config=DockerSandboxConfig,
             description="one locked-down container per session (Docker Engine API)")

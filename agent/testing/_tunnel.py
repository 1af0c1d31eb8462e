"""A loopback ``CONNECT`` proxy that sends every tunnel to the emulator, whatever host it names.

Real clients build their own URLs from well-known host names (Terraform's azurerm backend talks to
``https://{account}.blob.core.windows.net`` and ``https://login.microsoftonline.com``, az to
``https://management.azure.com``) and cannot be pointed at ``127.0.0.1`` otherwise. Given
``HTTPS_PROXY=http://127.0.0.1:PORT`` (which Go and ``requests`` honour) and the emulator's CA
in ``SSL_CERT_FILE``, their TLS connections reach the emulator, whose certificate names those
hosts (:data:`agent.testing.emulator.TLS_NAMES`); nothing leaves the machine. The hosts asked
for are recorded in :attr:`ConnectTunnel.hosts`.

Only ``CONNECT host:port`` is served; any other request is answered 405 and closed.
"""

from __future__ import annotations

from typing import Self

from agent.testing.proxy import ConnectProxy

__all__ = ["ConnectTunnel"]


class ConnectTunnel(ConnectProxy):
    """Tunnels ``CONNECT`` requests to ``127.0.0.1:target_port``.

    A :class:`~agent.testing.proxy.ConnectProxy` without credentials whose tunnels all lead to
    one port; a target without a port is answered 405.
    """

    def __init__(self, target_port: int) -> None:
        super().__init__()
        self.target_port = target_port
        #: ``host:port`` of each CONNECT received, in order.
        self.hosts: list[str] = []

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the value for ``HTTPS_PROXY``."""
        if self._server is None:
            raise RuntimeError("the tunnel is not started")
        return super().url

    async def start(self, host: str = "127.0.0.1") -> Self:
        """Listen on 127.0.0.1, any free port."""
        return await super().start(host)

    def _upstream(self, target: str) -> tuple[str, int] | None:
        if ":" not in target:
            return None
        self.hosts.append(target)
        return "127.0.0.1", self.target_port

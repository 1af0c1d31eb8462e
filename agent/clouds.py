"""Sovereign clouds: authority hosts and the names other tools give them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.urls import host_of

__all__ = ["CLOUDS", "AzureAuthorityHosts", "Cloud", "CloudName", "cloud_for_authority"]

CloudName = Literal["public", "usgovernment", "china"]
"""A cloud's name: the keys of :data:`CLOUDS`; the config models validate ``cloud`` with it."""


class AzureAuthorityHosts:
    """Authority hosts of the Microsoft Entra clouds (same values as azure-identity's)."""

    AZURE_PUBLIC_CLOUD = "login.microsoftonline.com"
    AZURE_CHINA = "login.chinacloudapi.cn"
    AZURE_GOVERNMENT = "login.microsoftonline.us"


@dataclass(frozen=True)
class Cloud:
    """One cloud: its authority host and the environment names Terraform and Pulumi use."""

    name: str
    authority_host: str
    terraform_environment: str  # ARM_ENVIRONMENT
    pulumi_environment: str  # ARM_ENVIRONMENT for pulumi-azure-native
    arm_endpoint: str


CLOUDS: dict[str, Cloud] = {  # keyed by CloudName
    "public": Cloud(
        "public",
        AzureAuthorityHosts.AZURE_PUBLIC_CLOUD,
        "public",
        "public",
        "https://management.azure.com/",
    ),
    "usgovernment": Cloud(
        "usgovernment",
        AzureAuthorityHosts.AZURE_GOVERNMENT,
        "usgovernment",
        "usgovernment",
        "https://management.usgovcloudapi.net/",
    ),
    "china": Cloud(
        "china",
        AzureAuthorityHosts.AZURE_CHINA,
        "china",
        "china",
        "https://management.chinacloudapi.cn/",
    ),
}


def cloud_for_authority(authority: str) -> Cloud | None:
    """Return the cloud whose authority host is in ``authority`` (a URL or a bare host)."""
    host = host_of(authority)
    for cloud in CLOUDS.values():
        if cloud.authority_host == host:
            return cloud
    return None

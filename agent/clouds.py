"""Sovereign clouds: authority hosts and the names other tools give them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLOUDS", "AzureAuthorityHosts", "Cloud", "cloud_for_authority"]


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


CLOUDS: dict[str, Cloud] = {
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
    host = authority.split("://", 1)[-1].split("/", 1)[0].lower()
    for cloud in CLOUDS.values():
        if cloud.authority_host == host:
            return cloud
    return None

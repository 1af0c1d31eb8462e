"""Every environment variable azauth reads or writes, named once.

As google-auth's ``environment_vars.py``: a grep for a variable finds its definition here and
its users.

Standard library only and free of imports: the warm ``azauth token`` path imports it.
Grouped by who defines the variable; each constant's docstring says what azauth does with it.
"""

# ruff: noqa: S105 - every constant here is a variable's name, never its value

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Azure Pipelines (read)

SYSTEM_OIDCREQUESTURI = "SYSTEM_OIDCREQUESTURI"
"""Read: the job's OIDC request endpoint (Azure DevOps ``oidctoken``); set in every job."""
SYSTEM_ACCESSTOKEN = "SYSTEM_ACCESSTOKEN"
"""Read (a connection's default ``system_access_token_env``): the job's System.AccessToken."""
TF_BUILD = "TF_BUILD"
"""Read: set to ``True`` by Azure Pipelines; chooses the ``azure-pipelines`` log format."""
AGENT_TEMPDIRECTORY = "AGENT_TEMPDIRECTORY"
"""Read: the agent's per-job temporary directory (exec's private files, serve's state)."""
AGENT_PROXYURL = "AGENT_PROXYURL"
"""Read: the agent's proxy, used when no ``*_PROXY`` variable is set."""
AGENT_PROXYUSERNAME = "AGENT_PROXYUSERNAME"
"""Read: the user name for ``AGENT_PROXYURL``."""
AGENT_PROXYPASSWORD = "AGENT_PROXYPASSWORD"
"""Read: the password for ``AGENT_PROXYURL`` (a registered secret)."""
AGENT_PROXYBYPASSLIST = "AGENT_PROXYBYPASSLIST"
"""Read: a JSON array of regular expressions of hosts that bypass ``AGENT_PROXYURL``."""
AZURESUBSCRIPTION_TENANT_ID = "AZURESUBSCRIPTION_TENANT_ID"
"""Read: the tenant of the service connection mapped by AzureCLI@2-style tasks (no profile)."""
AZURESUBSCRIPTION_CLIENT_ID = "AZURESUBSCRIPTION_CLIENT_ID"
"""Read: the client id of that service connection (no profile)."""
AZURESUBSCRIPTION_SERVICE_CONNECTION_ID = "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"
"""Read: the id of that service connection (no profile)."""
AZURESUBSCRIPTION_SUBSCRIPTION_ID = "AZURESUBSCRIPTION_SUBSCRIPTION_ID"
"""Read: the subscription of that service connection (optional)."""
AZURESUBSCRIPTION_VARIABLES: tuple[str, ...] = (
    AZURESUBSCRIPTION_TENANT_ID,
    AZURESUBSCRIPTION_CLIENT_ID,
    AZURESUBSCRIPTION_SERVICE_CONNECTION_ID,
    AZURESUBSCRIPTION_SUBSCRIPTION_ID,
)
"""The ``AZURESUBSCRIPTION_*`` variables, in connection-field order."""
AZURESUBSCRIPTION_FIELDS: dict[str, str] = {
    "tenant_id": AZURESUBSCRIPTION_TENANT_ID,
    "client_id": AZURESUBSCRIPTION_CLIENT_ID,
    "service_connection_id": AZURESUBSCRIPTION_SERVICE_CONNECTION_ID,
    "subscription_id": AZURESUBSCRIPTION_SUBSCRIPTION_ID,
}
"""A connection's field → the ``AZURESUBSCRIPTION_*`` variable that supplies it."""

# --------------------------------------------------------------------------------------------
# azauth's own

AZAUTH_PREFIX = "AZAUTH_"
"""Read: settings of the profile file's ``[settings]`` table (``AZAUTH_<FIELD>``)."""
AZAUTH_CONFIG = "AZAUTH_CONFIG"
"""Read: the profile file to use (overrides discovery)."""
AZAUTH_PROFILE = "AZAUTH_PROFILE"
"""Read: the profile to use (overrides ``default_profile``)."""
AZAUTH_CACHE_DIR = "AZAUTH_CACHE_DIR"
"""Read: the directory of the shared token cache of ``azauth token``."""
AZAUTH_PROFILE_CACHE = "AZAUTH_PROFILE_CACHE"
"""Read: ``0`` (or ``false``, ``no``, ``off``) turns off the profile cache (run, validate)."""
AZAUTH_FEEDS_DIR = "AZAUTH_FEEDS_DIR"
"""Written by ``azauth exec --feeds`` for its keyring backend; read by that backend."""
AZAUTH_ALLOW_SYMLINKED_DIRS = "AZAUTH_ALLOW_SYMLINKED_DIRS"
"""Read: ``1`` lets private directories sit under a symlinked parent."""
AZAUTH_EXEC_PROFILE = "AZAUTH_EXEC_PROFILE"
"""Written: the profile of ``azauth exec`` in its command's environment (nesting guard)."""
AZAUTH_OIDC_REQUEST_URL = "AZAUTH_OIDC_REQUEST_URL"
"""Written by ``azauth serve``: the URL of its OIDC request endpoint."""
AZAUTH_OIDC_REQUEST_TOKEN = "AZAUTH_OIDC_REQUEST_TOKEN"
"""Written by ``azauth serve``: the bearer its OIDC request endpoint demands (a secret)."""

# --------------------------------------------------------------------------------------------
# Azure SDKs, azure-identity and azure-cli (read or written)

AZURE_AUTHORITY_HOST = "AZURE_AUTHORITY_HOST"
"""Read (wins over a profile's ``authority``) and written by presets: the Entra authority."""
AZURE_IDENTITY_DISABLE_MULTITENANTAUTH = "AZURE_IDENTITY_DISABLE_MULTITENANTAUTH"
"""Read: any value pins every request to the configured tenant (as azure-identity does)."""
AZURE_CLIENT_ID = "AZURE_CLIENT_ID"
"""Written by the azure-identity preset: the app's client id."""
AZURE_TENANT_ID = "AZURE_TENANT_ID"
"""Written by the azure-identity preset: the tenant."""
AZURE_FEDERATED_TOKEN_FILE = "AZURE_FEDERATED_TOKEN_FILE"
"""Written by the azure-identity preset: the file holding the OIDC token."""
AZURE_CLIENT_SECRET = "AZURE_CLIENT_SECRET"
"""Removed (competing credential): azure-identity's EnvironmentCredential secret."""
AZURE_CLIENT_CERTIFICATE_PATH = "AZURE_CLIENT_CERTIFICATE_PATH"
"""Removed (competing credential): azure-identity's certificate file."""
AZURE_CLIENT_CERTIFICATE_PASSWORD = "AZURE_CLIENT_CERTIFICATE_PASSWORD"
"""Removed (competing credential): the password of that certificate."""
AZURE_CLIENT_SEND_CERTIFICATE_CHAIN = "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN"
"""Removed (competing credential): azure-identity's certificate-chain switch."""
AZURE_USERNAME = "AZURE_USERNAME"
"""Removed (competing credential): azure-identity's user name."""
AZURE_PASSWORD = "AZURE_PASSWORD"
"""Removed (competing credential): azure-identity's user password."""
AZURE_TOKEN_CREDENTIALS = "AZURE_TOKEN_CREDENTIALS"
"""Removed by the azure-identity preset: DefaultAzureCredential's credential selector."""
AZURE_CONFIG_DIR = "AZURE_CONFIG_DIR"
"""Written by ``azauth exec --az-login``: azure-cli's private configuration directory."""
AZURE_IDENTITY_SECRET_VARIABLES: tuple[str, ...] = (
    AZURE_CLIENT_SECRET,
    AZURE_CLIENT_CERTIFICATE_PATH,
    AZURE_CLIENT_CERTIFICATE_PASSWORD,
    AZURE_CLIENT_SEND_CERTIFICATE_CHAIN,
    AZURE_USERNAME,
    AZURE_PASSWORD,
)
"""azure-identity's EnvironmentCredential variables: a credential that competes with a preset's."""

# --------------------------------------------------------------------------------------------
# Terraform azurerm/azuread, the azurerm backend and Pulumi azure-native (written or removed)

ARM_USE_OIDC = "ARM_USE_OIDC"
"""Written: ``true`` selects the OIDC (workload identity federation) credential."""
ARM_CLIENT_ID = "ARM_CLIENT_ID"
"""Written: the app's client id."""
ARM_TENANT_ID = "ARM_TENANT_ID"
"""Written: the tenant."""
ARM_SUBSCRIPTION_ID = "ARM_SUBSCRIPTION_ID"
"""Written when the connection has one: the subscription."""
ARM_OIDC_TOKEN_FILE_PATH = "ARM_OIDC_TOKEN_FILE_PATH"
"""Written: the file holding the OIDC token."""
ARM_ENVIRONMENT = "ARM_ENVIRONMENT"
"""Written for clouds other than public: ``usgovernment`` or ``china``."""
ARM_OIDC_TOKEN = "ARM_OIDC_TOKEN"
"""Removed (competing): an OIDC token in the environment."""
ARM_CLIENT_ID_FILE_PATH = "ARM_CLIENT_ID_FILE_PATH"
"""Removed (competing): a file holding the client id."""
ARM_CLIENT_SECRET = "ARM_CLIENT_SECRET"
"""Removed (competing): a client secret."""
ARM_CLIENT_SECRET_FILE_PATH = "ARM_CLIENT_SECRET_FILE_PATH"
"""Removed (competing): a file holding a client secret."""
ARM_CLIENT_CERTIFICATE = "ARM_CLIENT_CERTIFICATE"
"""Removed (competing): a base64 client certificate."""
ARM_CLIENT_CERTIFICATE_PATH = "ARM_CLIENT_CERTIFICATE_PATH"
"""Removed (competing): a client certificate file."""
ARM_CLIENT_CERTIFICATE_PASSWORD = "ARM_CLIENT_CERTIFICATE_PASSWORD"
"""Removed (competing): the password of that certificate."""
ARM_OIDC_REQUEST_TOKEN = "ARM_OIDC_REQUEST_TOKEN"
"""Written by the request-flow presets (the bearer of an OIDC request endpoint), else removed."""
ARM_OIDC_REQUEST_URL = "ARM_OIDC_REQUEST_URL"
"""Written by the request-flow presets (an OIDC request endpoint), else removed."""
ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID = "ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID"
"""Written by the request-flow presets (the service connection), else removed."""
ARM_OIDC_AZURE_SERVICE_CONNECTION_ID = "ARM_OIDC_AZURE_SERVICE_CONNECTION_ID"
"""Removed (competing): the azurerm backend's name for the service connection."""
ARM_USE_MSI = "ARM_USE_MSI"
"""Written by ``azauth serve --imds`` (managed identity through IMDS), else removed."""
ARM_MSI_ENDPOINT = "ARM_MSI_ENDPOINT"
"""Written with ``ARM_USE_MSI`` (the IMDS endpoint of ``azauth serve``), else removed."""
ARM_USE_CLI = "ARM_USE_CLI"
"""Removed (competing): azure-cli authentication."""
ARM_USE_AKS_WORKLOAD_IDENTITY = "ARM_USE_AKS_WORKLOAD_IDENTITY"
"""Removed (competing): AKS workload identity."""
ARM_METADATA_HOSTNAME = "ARM_METADATA_HOSTNAME"
"""Removed (competing): a custom cloud's metadata host."""
ARM_ACCESS_KEY = "ARM_ACCESS_KEY"
"""Removed (competing): the azurerm backend's storage key."""
ARM_SAS_TOKEN = "ARM_SAS_TOKEN"
"""Removed (competing): the azurerm backend's SAS token."""

# --------------------------------------------------------------------------------------------
# Managed identity endpoints (written by ``azauth serve``, removed by ``exec --clear-env``)

IDENTITY_ENDPOINT = "IDENTITY_ENDPOINT"
"""Written: the App Service managed-identity endpoint of ``azauth serve``."""
IDENTITY_HEADER = "IDENTITY_HEADER"
"""Written: the secret that endpoint demands in ``X-IDENTITY-HEADER``."""
IDENTITY_SERVER_THUMBPRINT = "IDENTITY_SERVER_THUMBPRINT"
"""Removed (competing): Service Fabric's managed identity."""
IMDS_ENDPOINT = "IMDS_ENDPOINT"
"""Removed (competing): Azure Arc's IMDS override."""
MSI_ENDPOINT = "MSI_ENDPOINT"
"""Written: the legacy name of ``IDENTITY_ENDPOINT`` (older SDKs, Cloud Shell)."""
MSI_SECRET = "MSI_SECRET"
"""Written: the legacy name of ``IDENTITY_HEADER``."""

# --------------------------------------------------------------------------------------------
# GitHub Actions (removed: Terraform and Pulumi fall back to them)

ACTIONS_ID_TOKEN_REQUEST_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
"""Removed (competing): GitHub Actions' OIDC request bearer."""
ACTIONS_ID_TOKEN_REQUEST_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
"""Removed (competing): GitHub Actions' OIDC request URL."""

# --------------------------------------------------------------------------------------------
# TLS and proxies (read; the proxy variables also in lower case)

SSL_CERT_FILE = "SSL_CERT_FILE"
"""Read: a PEM file of CA certificates replacing the system trust store (OpenSSL's name)."""
SSL_CERT_DIR = "SSL_CERT_DIR"
"""Read: a directory of hashed CA certificates (OpenSSL's name)."""
REQUESTS_CA_BUNDLE = "REQUESTS_CA_BUNDLE"
"""Read when ``SSL_CERT_FILE`` is unset (requests' name); written with it by ``--emulate``."""
HTTP_PROXY = "HTTP_PROXY"
"""Read: the proxy of http requests."""
HTTPS_PROXY = "HTTPS_PROXY"
"""Read: the proxy of https requests."""
ALL_PROXY = "ALL_PROXY"
"""Read: the proxy of any request."""
NO_PROXY = "NO_PROXY"
"""Read, and written by ``azauth serve``/``exec`` so loopback traffic bypasses any proxy."""

# --------------------------------------------------------------------------------------------
# The host (read)

NO_COLOR = "NO_COLOR"
"""Read: any value turns colours off in the console log format (no-color.org)."""
HOME = "HOME"
"""Read: the home directory (``~`` in paths, the default config and cache directories)."""
USERPROFILE = "USERPROFILE"
"""Read when ``HOME`` is unset (Windows)."""
XDG_CONFIG_HOME = "XDG_CONFIG_HOME"
"""Read: where ``azauth/azauth.toml`` is looked for."""
XDG_CACHE_HOME = "XDG_CACHE_HOME"
"""Read: where the shared token cache lives."""
XDG_RUNTIME_DIR = "XDG_RUNTIME_DIR"
"""Read: where ``azauth serve --background`` keeps its state file."""
PATH = "PATH"
"""Read: where ``az`` is looked for (``exec --az-login``)."""

# --------------------------------------------------------------------------------------------
# Package clients and registries (written by feed and registry outputs, exec)

DOCKER_CONFIG = "DOCKER_CONFIG"
"""Written by ``azauth exec --registry``: the directory of a private Docker config.json."""
REGISTRY_AUTH_FILE = "REGISTRY_AUTH_FILE"
"""Written by ``azauth exec --registry``: that config.json, for skopeo, podman and buildah."""
NPM_CONFIG_USERCONFIG = "NPM_CONFIG_USERCONFIG"
"""Written by ``azauth exec --feeds``: npm's private user configuration."""
UV_KEYRING_PROVIDER = "UV_KEYRING_PROVIDER"
"""Written by ``azauth exec --feeds``: ``subprocess`` lets uv ask the keyring."""
VSS_NUGET_EXTERNAL_FEED_ENDPOINTS = "VSS_NUGET_EXTERNAL_FEED_ENDPOINTS"
"""Written by feed_env_file: the Azure Artifacts Credential Provider's feed credentials."""
VSS_NUGET_ACCESSTOKEN = "VSS_NUGET_ACCESSTOKEN"
"""Written by feed_env_file: the credential provider's token (a secret)."""
VSS_NUGET_URI_PREFIXES = "VSS_NUGET_URI_PREFIXES"
"""Written by feed_env_file: the feed URLs the token is for."""
TWINE_REPOSITORY_URL = "TWINE_REPOSITORY_URL"
"""Written by feed_env_file (one feed): twine's upload URL."""
TWINE_USERNAME = "TWINE_USERNAME"
"""Written by feed_env_file (one feed): twine's user name."""
TWINE_PASSWORD = "TWINE_PASSWORD"
"""Written by feed_env_file (one feed): twine's password, the token (a secret)."""
TWINE_PREFIX = "TWINE_"
"""Removed by ``azauth exec --feeds``: twine variables that would win over the keyring."""
UV_INDEX_PREFIX = "UV_INDEX_"
"""Written by feed_env_file: ``UV_INDEX_<NAME>_USERNAME``/``_PASSWORD`` per feed."""

"""Print an ARM access token from DefaultAzureCredential (managed identity excluded)."""

from azure.identity import DefaultAzureCredential

credential = DefaultAzureCredential(exclude_managed_identity_credential=True)
print(credential.get_token("https://management.azure.com/.default").token)

// azure-identity for JavaScript against azauth's token server (run by test_azure_identity_js.py).
// Prints, one per line: the appid of a ManagedIdentityCredential token, the appid of a
// ClientAssertionCredential token whose callback asks the OIDC request endpoint (GitHub shape),
// and what AzurePipelinesCredential does with the endpoint's http:// URL.
const { ManagedIdentityCredential, AzurePipelinesCredential, ClientAssertionCredential } = require("@azure/identity");
const appid = (t) => JSON.parse(Buffer.from(t.token.split(".")[1], "base64url").toString()).appid;
(async () => {
  const mi = new ManagedIdentityCredential({ clientId: process.env.TEST_CLIENT });
  console.log(appid(await mi.getToken("https://vault.azure.net/.default")));
  const url = process.env.AZAUTH_OIDC_REQUEST_URL, secret = process.env.AZAUTH_OIDC_REQUEST_TOKEN;
  const assertion = async () => {
    const r = await fetch(url + "?api-version=2.0&serviceConnectionId=" + process.env.TEST_SC2 + "&audience=api://AzureADTokenExchange",
      { headers: { Authorization: "Bearer " + secret } });
    return (await r.json()).value;
  };
  const ca = new ClientAssertionCredential(process.env.TEST_TENANT, process.env.TEST_CLIENT2, assertion,
    { authorityHost: process.env.AZURE_AUTHORITY_HOST, disableInstanceDiscovery: true });
  console.log(appid(await ca.getToken("https://storage.azure.com/.default")));
  process.env.SYSTEM_OIDCREQUESTURI = url;
  const ap = new AzurePipelinesCredential(process.env.TEST_TENANT, process.env.TEST_CLIENT2,
    process.env.TEST_SC2, secret, { authorityHost: process.env.AZURE_AUTHORITY_HOST, disableInstanceDiscovery: true });
  try { await ap.getToken("https://storage.azure.com/.default"); console.log("pipelines ok"); }
  catch (e) { console.log(/allowInsecureConnection/.test(e.message) ? "pipelines refuses http" : "pipelines " + e.message); }
})().catch((e) => { console.error(e.message); process.exit(1); });

#!/usr/bin/env bash
# The job of `azauth run --once` as a bash loop of curl and jq, one request after another: what
# many pipelines do today. For each line of JOB.tsv (service connection id, tenant id, client id,
# scope, path; lines of one connection together) it fetches the connection's OIDC token once
# (POST $SYSTEM_OIDCREQUESTURI), trades it at Entra ($AZURE_AUTHORITY_HOST) for the scope's access
# token and writes it as azauth does: a 0600 temporary file in the target's directory (created
# 0700), synced, renamed over the target, the directory synced. curl trusts CURL_CA_BUNDLE.
#
# Usage: bash bench/curl_run.sh JOB.tsv
set -euo pipefail
umask 077
current_sc=""
oidc=""
while IFS=$'\t' read -r sc tenant client scope path; do
  if [[ "$sc" != "$current_sc" ]]; then
    oidc=$(curl -sS --fail -X POST \
      -H "Content-Type: application/json" \
      -H "Authorization: Bearer ${SYSTEM_ACCESSTOKEN}" \
      -H "X-TFS-FedAuthRedirect: Suppress" \
      --data '' \
      "${SYSTEM_OIDCREQUESTURI}?api-version=7.1&serviceConnectionId=${sc}" | jq -r .oidcToken)
    current_sc="$sc"
  fi
  token=$(curl -sS --fail -X POST \
    --data-urlencode "client_assertion=${oidc}" \
    --data-urlencode "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer" \
    --data-urlencode "client_id=${client}" \
    --data-urlencode "grant_type=client_credentials" \
    --data-urlencode "scope=${scope}" \
    "${AZURE_AUTHORITY_HOST%/}/${tenant}/oauth2/v2.0/token" | jq -r .access_token)
  dir=$(dirname "$path")
  mkdir -p -m 700 "$dir"
  tmp=$(mktemp "$dir/.$(basename "$path").XXXXXXXX")
  printf '%s' "$token" > "$tmp"
  sync "$tmp"
  mv -f "$tmp" "$path"
  sync "$dir"
done < "$1"

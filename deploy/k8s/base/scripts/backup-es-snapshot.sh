#!/bin/bash
# Runbook: /scripts/backup-es-snapshot.sh. A snapshot of each tenant's indices (the tenant's
# rows in tenant_containers) into the tenant's own repository, uploaded to `<org>/<ns>/` in
# the bucket: data blobs first, then the root generation files, `index.latest` last, so that
# a reader never sees a generation whose blobs are not there yet.
set -euo pipefail
. /scripts/s3.sh

# The bucket may not exist on a first night (PUT of an existing bucket says so: ignored).
s3 PUT "" -o /dev/null 2>/dev/null || true
tenants=$(psql -At -v ON_ERROR_STOP=1 -c "SELECT DISTINCT org_id || '/' || namespace FROM tenant_containers ORDER BY 1")
failed=0
for tenant in $tenants; do
  org=${tenant%%/*}; ns=${tenant#*/}
  repo="backup-$org-$ns"; location="$REPO_DIR/$org/$ns"; name="nightly-${STAMP//_/-}"
  mkdir -p "$location"
  es PUT "_snapshot/$repo" -d "{\"type\": \"fs\", \"settings\": {\"location\": \"$location\"}}" >/dev/null
  indices=$(psql -At -v ON_ERROR_STOP=1 -c "SELECT string_agg(index_name, ',') FROM tenant_containers
    WHERE org_id = '$org' AND namespace = '$ns'")
  reply=$(es PUT "_snapshot/$repo/$name?wait_for_completion=true" \
    -d "{\"indices\": \"$indices\", \"include_global_state\": false}")
  if ! grep -q '"state":"SUCCESS"' <<<"$reply"; then
    log "snapshot $repo/$name did not succeed: ${reply:0:500}"; failed=1; continue
  fi
  (cd "$location" && find . -type f ! -name 'index-*' ! -name index.latest -printf '%P\n' && \
    find . -maxdepth 1 -type f -name 'index-*' -printf '%P\n' && echo index.latest) |
  while read -r blob; do s3 PUT "$org/$ns/$blob" -T "$location/$blob" -o /dev/null; done
  log "snapshot $name of $tenant uploaded to $S3_BUCKET/$org/$ns/"
done
exit $failed

#!/bin/bash
# Runbook: /scripts/backup-metadata.sh. The whole es_metadata database, and each organisation's
# tenant_containers rows, as `openssl enc -aes-256-cbc -salt -k "$DB_PASSWORD"` uploaded to
# metadata/all/ and metadata/<org>/.
set -euo pipefail
. /scripts/s3.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
upload() {  # upload SCOPE FILE
  local key="metadata/$1/metadata_backup_$1_$STAMP.sql.enc"
  s3 PUT "$key" -T "$2" -o /dev/null
  log "uploaded $S3_BUCKET/$key"
}
pg_dump -v 2>"$work/pg_dump.log" | openssl enc -aes-256-cbc -salt -k "$DB_PASSWORD" -out "$work/all.enc" \
  || { tail -5 "$work/pg_dump.log"; exit 1; }
upload all "$work/all.enc"
for org in $(psql -At -v ON_ERROR_STOP=1 -c "SELECT DISTINCT org_id FROM tenant_containers ORDER BY 1"); do
  psql -v ON_ERROR_STOP=1 -c "\\copy (SELECT * FROM tenant_containers WHERE org_id = '$org') TO STDOUT" |
    openssl enc -aes-256-cbc -salt -k "$DB_PASSWORD" -out "$work/$org.enc"
  upload "$org" "$work/$org.enc"
done

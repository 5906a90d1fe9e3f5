#!/usr/bin/env bash
# The platform's own way of filling and backing up an environment, with the runbook's literal
# tools: psql for tenant_containers, curl for Elasticsearch, Elasticsearch's own snapshot API
# (names of the platform's choosing), `pg_dump | openssl enc -aes-256-cbc -salt -k` for the
# metadata dumps, and curl's S3 signing (what `mc cp` does) to put everything in the bucket.
# Nothing here is drdrill's: the tests use it to make a "staging" environment drdrill did not
# write, and then restore-test it.
#
# Environment: ES_URL, S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY, PGHOST, PGPORT,
# PGUSER, PGPASSWORD, PGDATABASE, DB_PASSWORD, REPO_DIR (a directory under Elasticsearch's
# path.repo where the platform's fs repositories live).
#
#   platform_job.sh schema
#   platform_job.sh tenant ORG/NS INDICES DOCS         indices, documents and their rows
#   platform_job.sh unassignable ORG/NS                an index of the tenant no node can hold
#   platform_job.sh snapshot ORG/NS NAME [partial]     snapshot into the tenant's repository, upload
#   platform_job.sh dump all|ORG                       encrypted dump, uploaded; prints its key
#   platform_job.sh put KEY FILE                       upload a file
#   platform_job.sh delete KEY                         delete an object
set -euo pipefail

s3() {  # s3 METHOD KEY [curl args...]: a signed request to the bucket
  local method=$1 key=$2; shift 2
  curl -sS --fail-with-body --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X "$method" "$S3_ENDPOINT/$S3_BUCKET/$key" "$@"
}

es() {  # es METHOD PATH [curl args...]; JSON unless the caller says otherwise
  local method=$1 path=$2 type=application/json; shift 2
  if [ "${1:-}" = --ndjson ]; then type=application/x-ndjson; shift; fi
  curl -sS --fail-with-body -X "$method" "$ES_URL/$path" -H "Content-Type: $type" "$@"
}

split_tenant() { ORG=${1%%/*}; NS=${1#*/}; }

case "$1" in
schema)
  psql -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE TABLE IF NOT EXISTS tenant_containers (
    id             bigserial PRIMARY KEY,
    org_id         text   NOT NULL,
    namespace      text   NOT NULL,
    container_name text   NOT NULL,
    index_name     text   NOT NULL,
    doc_count      bigint,
    UNIQUE (org_id, namespace, index_name)
);
SQL
  ;;
tenant)
  split_tenant "$2"; indices=$3; docs=$4
  for i in $(seq 1 "$indices"); do
    index="logs-$ORG-$NS-$i"
    es PUT "$index" -d '{"settings": {"number_of_shards": 1, "number_of_replicas": 0}}' >/dev/null
    body=$(for n in $(seq 1 "$docs"); do
      printf '{"index":{"_id":"%s"}}\n{"tenant":"%s/%s","n":%s,"msg":"event %s of %s"}\n' "$n" "$ORG" "$NS" "$n" "$n" "$index"
    done)
    printf '%s\n' "$body" | es POST "$index/_bulk?refresh=true" --ndjson --data-binary @- >/dev/null
    psql -v ON_ERROR_STOP=1 -q -c "INSERT INTO tenant_containers (org_id, namespace, container_name, index_name, doc_count)
      VALUES ('$ORG', '$NS', 'logs-$i', '$index', $docs)"
  done
  ;;
unassignable)
  split_tenant "$2"; index="logs-$ORG-$NS-stuck"
  es PUT "$index?wait_for_active_shards=0" -d '{"settings": {"number_of_shards": 1, "number_of_replicas": 0,
    "index.routing.allocation.require._name": "no-such-node"}}' >/dev/null
  psql -v ON_ERROR_STOP=1 -q -c "INSERT INTO tenant_containers (org_id, namespace, container_name, index_name)
    VALUES ('$ORG', '$NS', 'stuck', '$index')"
  ;;
snapshot)
  split_tenant "$2"; name=$3; partial=false
  [ "${4:-}" = partial ] && partial=true
  repo="platform-$ORG-$NS"; location="$REPO_DIR/$ORG/$NS"
  es PUT "_snapshot/$repo" -d "{\"type\": \"fs\", \"settings\": {\"location\": \"$location\"}}" >/dev/null
  indices=$(psql -At -c "SELECT string_agg(index_name, ',') FROM tenant_containers
    WHERE org_id = '$ORG' AND namespace = '$NS'")
  es PUT "_snapshot/$repo/$name?wait_for_completion=true" \
    -d "{\"indices\": \"$indices\", \"include_global_state\": false, \"partial\": $partial}" \
    >/dev/null
  # Upload the repository: data blobs first, the root generation after, index.latest last.
  (cd "$location" && find . -type f ! -name 'index-*' ! -name index.latest -printf '%P\n' && \
    find . -maxdepth 1 -type f -name 'index-*' -printf '%P\n' && echo index.latest) |
  while read -r blob; do s3 PUT "$ORG/$NS/$blob" -T "$location/$blob" >/dev/null; done
  ;;
dump)
  scope=$2; stamp=$(date -u +%Y%m%d_%H%M%S); key="metadata/$scope/metadata_backup_${scope}_${stamp}.sql.enc"
  out=$(mktemp)
  if [ "$scope" = all ]; then
    pg_dump | openssl enc -aes-256-cbc -salt -k "$DB_PASSWORD" -out "$out" 2>/dev/null
  else
    psql -v ON_ERROR_STOP=1 -c "\\copy (SELECT * FROM tenant_containers WHERE org_id = '$scope') TO STDOUT" |
      openssl enc -aes-256-cbc -salt -k "$DB_PASSWORD" -out "$out" 2>/dev/null
  fi
  s3 PUT "$key" -T "$out" >/dev/null
  rm -f "$out"
  echo "$key"
  ;;
put)
  s3 PUT "$2" -T "$3" >/dev/null
  ;;
delete)
  s3 DELETE "$2" >/dev/null
  ;;
*)
  echo "unknown command $1" >&2; exit 2
  ;;
esac

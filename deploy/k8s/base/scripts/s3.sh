# Shared by the backup scripts: where the services are (the Services' DNS names, or the
# addresses Kubernetes injects for them), signed S3 requests with curl (what `mc` does), and
# Elasticsearch requests that fail on an HTTP error.
ES_URL=${ES_URL:-http://${ELASTICSEARCH_SERVICE_HOST:-elasticsearch}:${ELASTICSEARCH_SERVICE_PORT:-9200}}
S3_ENDPOINT=${S3_ENDPOINT:-http://${MINIO_SERVICE_HOST:-minio}:${MINIO_SERVICE_PORT:-9000}}
export PGHOST=${PGHOST:-${POSTGRES_SERVICE_HOST:-postgres}} PGPORT=${PGPORT:-${POSTGRES_SERVICE_PORT:-5432}}
STAMP=${STAMP:-$(date -u +%Y%m%d_%H%M%S)}

s3() {  # s3 METHOD KEY [curl args...]: a signed request to the bucket
  local method=$1 key=$2; shift 2
  curl -sS --fail-with-body --retry 3 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X "$method" "$S3_ENDPOINT/$S3_BUCKET/$key" "$@"
}

es() {  # es METHOD PATH [curl args...]: the reply on stdout; on an HTTP error, the reply on stderr
  local method=$1 path=$2 reply; shift 2
  if ! reply=$(curl -sS --fail-with-body -X "$method" "$ES_URL/$path" -H "Content-Type: application/json" "$@"); then
    echo "elasticsearch: $method /$path failed: ${reply:0:1000}" >&2
    return 1
  fi
  printf '%s\n' "$reply"
}

log() { echo "$(date -u +%FT%TZ) $*"; }

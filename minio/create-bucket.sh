#!/bin/sh
# Create the S3 buckets dethrone needs, idempotently: usage  create-bucket.sh BUCKET...
# (compose: the MLflow artifact bucket and the pipeline staging bucket).
#
# Talks plain S3 through boto3, so it works against MinIO or any S3-compatible store (the
# native stack test runs it against seaweedfs). An existing bucket is left as it is. The
# endpoint may still be starting, so each call is retried for S3_WAIT_SECONDS.
#
# Environment: S3_ENDPOINT_URL (or MLFLOW_S3_ENDPOINT_URL), AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (default us-east-1), S3_WAIT_SECONDS (default 60),
# PYTHON (default python3; must have boto3).
set -eu

if [ "$#" -eq 0 ]; then
    echo "usage: $0 BUCKET..." >&2
    exit 64
fi

exec "${PYTHON:-python3}" - "$@" <<'PY'
import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

endpoint = os.environ.get("S3_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
if not endpoint:
    sys.exit("create-bucket: set S3_ENDPOINT_URL (or MLFLOW_S3_ENDPOINT_URL)")
deadline = time.monotonic() + float(os.environ.get("S3_WAIT_SECONDS", "60"))
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
)


def retrying(call, *args, **kwargs):
    # The store may be up but not yet serving S3 (connection refused or a 503).
    while True:
        try:
            return call(*args, **kwargs)
        except (EndpointConnectionError, ConnectionError) as exc:
            error = exc
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status < 500:
                raise
            error = exc
        if time.monotonic() > deadline:
            sys.exit(f"create-bucket: {endpoint} not ready: {error}")
        time.sleep(1)


for bucket in sys.argv[1:]:
    try:
        retrying(s3.head_bucket, Bucket=bucket)
        print(f"create-bucket: {bucket} exists")
        continue
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
            raise
    try:
        retrying(s3.create_bucket, Bucket=bucket)
        print(f"create-bucket: {bucket} created")
    except ClientError as exc:
        # Another setup run won the race: the bucket is there, which is all we need.
        if exc.response.get("Error", {}).get("Code") not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
        print(f"create-bucket: {bucket} exists")
PY

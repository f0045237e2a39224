"""Staging: frames round-trip as Parquet through a local folder or an S3 client."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from dethrone.pipeline.staging import Stager, StagingError, load_frame, stage_frame
from dethrone.settings import Settings


@pytest.fixture
def frame(diamonds) -> pd.DataFrame:
    return diamonds.sample(300, random_state=1)


def test_local_round_trip_keeps_values_dtypes_and_index(tmp_path, frame):
    settings = Settings(dethrone_home=str(tmp_path))
    uri = stage_frame(frame, "runs/r1/training.parquet", settings)
    assert uri.startswith("file://") and str(tmp_path) in uri
    back = load_frame(uri, settings)
    pd.testing.assert_frame_equal(back, frame)


def test_staging_uri_folder_and_overwrite(tmp_path, frame):
    settings = Settings(staging_uri=str(tmp_path / "stage"))
    stager = Stager(settings)
    first = stager.put(frame, "k.parquet")
    second = stager.put(frame.head(10), "k.parquet")  # a retried task rewrites its key
    assert first == second
    assert len(stager.get(second)) == 10
    assert not list((tmp_path / "stage").glob("*.tmp"))


def test_missing_file_names_the_uri(tmp_path):
    settings = Settings(dethrone_home=str(tmp_path))
    with pytest.raises(StagingError, match="nothing.parquet"):
        load_frame((tmp_path / "nothing.parquet").as_uri(), settings)


def test_s3_needs_an_endpoint(frame):
    settings = Settings(staging_uri="s3://bucket/prefix")
    with pytest.raises(StagingError, match="S3_ENDPOINT_URL"):
        stage_frame(frame, "a.parquet", settings)


class FakeMinio:
    """In-memory stand-in for the few minio.Minio methods staging uses."""

    def __init__(self):
        self.objects: dict[tuple[str, str], bytes] = {}
        self.buckets: set[str] = set()

    def bucket_exists(self, bucket):
        return bucket in self.buckets

    def make_bucket(self, bucket):
        self.buckets.add(bucket)

    def put_object(self, bucket, name, data, length, content_type=None):
        assert bucket in self.buckets
        self.objects[(bucket, name)] = data.read(length)

    def get_object(self, bucket, name):
        payload = self.objects[(bucket, name)]

        class Response(io.BytesIO):
            def release_conn(self):
                pass

        return Response(payload)


def test_s3_keys_and_round_trip_through_the_client(frame):
    settings = Settings(staging_uri="s3://stage-bucket/pipeline/", s3_endpoint_url="http://x:1")
    stager = Stager(settings)
    stager._client = FakeMinio()
    uri = stager.put(frame, "runs/r2/current.parquet")
    assert uri == "s3://stage-bucket/pipeline/runs/r2/current.parquet"
    pd.testing.assert_frame_equal(stager.get(uri), frame)
    with pytest.raises(StagingError, match="s3://stage-bucket/other"):
        stager.get("s3://stage-bucket/other")

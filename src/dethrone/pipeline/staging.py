"""Frames travel between pipeline tasks as Parquet files; XCom only sees their URIs.

Two backends behind one small interface:

* object storage (MinIO or any S3 server) through the ``minio`` client, URIs
  ``s3://bucket/key``;
* a local folder (the embedded mode), URIs ``file:///abs/path``.
"""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from dethrone.settings import Settings


class StagingError(RuntimeError):
    """Reading or writing a staged frame failed (the message names the URI)."""


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def _minio_client(settings: Settings):
    from minio import Minio  # imported lazily: the local mode does not need it

    endpoint = settings.s3_endpoint_url or settings.mlflow_s3_endpoint_url
    if not endpoint:
        raise StagingError("staging to s3:// needs S3_ENDPOINT_URL or MLFLOW_S3_ENDPOINT_URL")
    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    return Minio(
        parsed.netloc,
        access_key=settings.aws_access_key_id or None,
        secret_key=settings.aws_secret_access_key or None,
        secure=parsed.scheme == "https",
        region=settings.aws_default_region or None,
    )


class Stager:
    """Write and read staged Parquet frames.

    Parameters
    ----------
    settings : Settings
        ``staging_uri`` chooses the backend: ``s3://bucket[/prefix]`` for object
        storage, a folder path for the local mode, empty for ``DETHRONE_HOME/staging``.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        root = settings.staging_uri or str(Path(settings.dethrone_home) / "staging")
        self.s3 = root.startswith("s3://")
        if self.s3:
            self.bucket, self.prefix = _split_s3(root)
            self._client = None
        else:
            self.root = Path(root.removeprefix("file://")).expanduser().resolve()

    @property
    def client(self):
        """The ``minio`` client (created on first use)."""
        if self._client is None:
            self._client = _minio_client(self.settings)
        return self._client

    def put(self, frame: pd.DataFrame, key: str) -> str:
        """Store ``frame`` as Parquet under ``key`` and return its URI.

        Writing the same key again overwrites it, so a retried task is idempotent.
        """
        buf = io.BytesIO()
        frame.to_parquet(buf, index=True)
        data = buf.getvalue()
        if self.s3:
            name = f"{self.prefix.rstrip('/')}/{key}".lstrip("/")
            try:
                if not self.client.bucket_exists(self.bucket):
                    self.client.make_bucket(self.bucket)
                self.client.put_object(
                    self.bucket,
                    name,
                    io.BytesIO(data),
                    len(data),
                    content_type="application/vnd.apache.parquet",
                )
            except Exception as exc:  # minio raises several unrelated types
                raise StagingError(f"cannot write s3://{self.bucket}/{name}: {exc}") from exc
            return f"s3://{self.bucket}/{name}"
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a reader never sees half a file
        return path.as_uri()

    def get(self, uri: str) -> pd.DataFrame:
        """Read the frame stored at ``uri`` (``s3://`` or ``file://``)."""
        try:
            if uri.startswith("s3://"):
                bucket, name = _split_s3(uri)
                resp = self.client.get_object(bucket, name)
                try:
                    data = resp.read()
                finally:
                    resp.close()
                    resp.release_conn()
                return pd.read_parquet(io.BytesIO(data))
            path = Path(urlparse(uri).path) if uri.startswith("file://") else Path(uri)
            return pd.read_parquet(path)
        except StagingError:
            raise
        except Exception as exc:
            raise StagingError(f"cannot read staged frame {uri}: {exc}") from exc


def stage_frame(frame: pd.DataFrame, key: str, settings: Settings) -> str:
    """Store ``frame`` under ``key`` with the backend chosen by ``settings``; return the URI."""
    return Stager(settings).put(frame, key)


def load_frame(uri: str, settings: Settings) -> pd.DataFrame:
    """Read a frame written by :func:`stage_frame`."""
    return Stager(settings).get(uri)

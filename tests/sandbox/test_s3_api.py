"""The sandbox's S3 API: reached by address and credentials from the environment only, as S3 is in production."""

from __future__ import annotations

import boto3
import fsspec
import pytest
from botocore.exceptions import ClientError

from sandbox.s3_api import BUCKET, S3Api


def test_fsspec_reaches_it_through_the_environment_alone(s3_api: S3Api) -> None:
    fs, path = fsspec.core.url_to_fs(f"s3://{BUCKET}/test-s3-api/one.json")
    fs.pipe_file(path, b'{"a": 1}')

    assert fs.cat_file(path) == b'{"a": 1}'
    assert s3_api.endpoint_url.startswith("http://127.0.0.1:")


def test_it_refuses_a_conditional_write_whose_condition_fails(s3_api: S3Api) -> None:
    client = boto3.client("s3")
    client.put_object(Bucket=BUCKET, Key="test-s3-api/cas.json", Body=b"1")

    with pytest.raises(ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=BUCKET, Key="test-s3-api/cas.json", Body=b"2", IfNoneMatch="*")
    assert client.get_object(Bucket=BUCKET, Key="test-s3-api/cas.json")["Body"].read() == b"1"

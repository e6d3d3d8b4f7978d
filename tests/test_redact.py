"""Credentials in URLs never reach a message (issue 16, finding 6): an S3 endpoint ``http://user:pw@host`` was
echoed with its password in an error. Against the real SeaweedFS server (tests/s3_server.py)."""

from __future__ import annotations

import numpy as np
import pytest

from berg_ray.cli import main
from berg_ray.errors import StorageError
from berg_ray.validation.redact import redact_credentials
from berg_ray.sweep.pipeline import input_error

PASSWORD = "pw-5e1f-not-for-logs"


@pytest.mark.parametrize(("text", "shown"), [
    (f"http://user:{PASSWORD}@host:9000/x", "http://***@host:9000/x"),
    (f"endpoint 'https://user:p@{PASSWORD}@host' failed", "endpoint 'https://***@host' failed"),
    (f"(S3://key:{PASSWORD}@bucket/prefix/)", "(S3://***@bucket/prefix/)"),
    ("s3://bucket/k@ey and https://host/a@b and mail user@host", "s3://bucket/k@ey and https://host/a@b and mail "
                                                                  "user@host"),
])
def test_redact_credentials(text, shown):
    assert redact_credentials(text) == shown
    assert str(StorageError(f"cannot read {text}")) == f"cannot read {shown}"


def _endpoint_with_credentials(server) -> str:
    return server.endpoint.replace("://", f"://{server.access_key}:{PASSWORD}@")


def test_cli_errors_never_show_an_endpoints_password(s3_env, tmp_path, capsys, monkeypatch):
    """download, sweep and encode, the endpoint given as a flag or as AWS_ENDPOINT_URL."""
    bucket = s3_env.new_bucket()
    endpoint = _endpoint_with_credentials(s3_env)
    np.save(tmp_path / "v.npy", np.zeros((2, 144, 256), np.uint8))
    commands = [
        ["download", "--out", str(tmp_path / "berg"), "--source", f"s3://{bucket}/x/", "--s3-endpoint-url", endpoint],
        ["sweep", "--berg-dir", str(tmp_path), "--input", f"s3://{bucket}/in/", "--out", str(tmp_path / "out"),
         "--s3-endpoint-url", endpoint],
    ]
    for argv in commands:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: S3 endpoint 'http://***@127.0.0.1:") and "credentials" in err, err
        assert PASSWORD not in err
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("BERG_RAY_CACHE", str(tmp_path / "cache"))
    assert main(["encode", "--berg-dir", f"s3://{bucket}/x/", "--session", "session-8_scan-5", "--input",
                 str(tmp_path / "v.npy"), "--out", str(tmp_path / "o.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "***@" in err and PASSWORD not in err, err


def test_a_source_uri_with_credentials_is_redacted_in_s3_errors(s3_env, tmp_path, capsys):
    """The real server refuses the bucket name 'key:pw@bucket'; its error names the URI without the password."""
    bucket = s3_env.new_bucket()
    assert main(["download", "--out", str(tmp_path / "berg"), "--source",
                 f"s3://{s3_env.access_key}:{PASSWORD}@{bucket}/x/"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "s3://***@" in err and PASSWORD not in err, err


def test_sweep_input_errors_of_other_exceptions_are_redacted(tmp_path):
    from berg_ray.storage import open_store

    row = input_error(open_store(str(tmp_path)), "id", "v.npy", OSError(f"cannot reach http://k:{PASSWORD}@h/"))
    assert PASSWORD not in row["error"] and "http://***@h/" in row["error"]

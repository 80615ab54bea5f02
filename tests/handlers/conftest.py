"""What the handler tests share: a loopback server standing in for CloudFormation's presigned S3
response URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support_aws import CloudFormation


@pytest.fixture
def cloudformation() -> Iterator[CloudFormation]:
    server = CloudFormation()
    yield server
    server.close()

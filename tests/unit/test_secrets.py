"""Settings from Secrets Manager (moto): what the template gives the functions on AWS in place of
DATABASE_URL and HOOKPOST_ADMIN_TOKEN."""

from __future__ import annotations

import json

import boto3
import psycopg
import pytest
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from psycopg.conninfo import conninfo_to_dict

from hookpost.config import get_settings
from hookpost.secrets_manager import PROXY_CA_BUNDLE


def secret(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return boto3.client("secretsmanager").create_secret(Name="s", SecretString=text)["ARN"]


def test_the_database_url_comes_from_an_rds_style_secret_and_the_proxy_endpoint(aws, env):
    # Characters that mean something in a URL must reach libpq as they are.
    credentials = {"username": "hook post", "password": "p@ss/w:rd?#%", "engine": "postgres"}
    env(
        HOOKPOST_DATABASE_SECRET_ID=secret(credentials),
        HOOKPOST_DATABASE_HOST="hookpost-proxy.proxy-abc.eu-west-1.rds.amazonaws.com",
        HOOKPOST_DATABASE_NAME="hookpost",
        DATABASE_URL="",
    )

    parts = conninfo_to_dict(get_settings().database_url)

    assert parts == {
        "user": "hook post",
        "password": "p@ss/w:rd?#%",
        "host": "hookpost-proxy.proxy-abc.eu-west-1.rds.amazonaws.com",
        "port": "5432",
        "dbname": "hookpost",
        # The proxy's certificate and name are checked, against the roots shipped in the layer.
        "sslmode": "verify-full",
        "sslrootcert": str(PROXY_CA_BUNDLE),
    }


def test_the_shipped_ca_bundle_holds_the_roots_rds_proxy_chains_to():
    from cryptography import x509

    roots = x509.load_pem_x509_certificates(PROXY_CA_BUNDLE.read_bytes())
    names = {r.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value for r in roots}
    assert {f"Amazon Root CA {n}" for n in range(1, 5)} <= names


def test_a_port_in_the_secret_is_used(aws, env):
    env(
        HOOKPOST_DATABASE_SECRET_ID=secret({"username": "u", "password": "p", "port": 6432}),
        HOOKPOST_DATABASE_HOST="db.internal",
        HOOKPOST_DATABASE_NAME="hookpost",
    )
    assert conninfo_to_dict(get_settings().database_url)["port"] == "6432"


def test_the_url_built_from_a_secret_connects(aws, env, database_url):
    """Against the real test PostgreSQL, a Unix socket directory standing in for the proxy."""
    parts = conninfo_to_dict(database_url)
    credentials = {"username": parts["user"], "password": parts.get("password") or ""}
    env(
        HOOKPOST_DATABASE_SECRET_ID=secret({**credentials, "port": parts.get("port") or 5432}),
        HOOKPOST_DATABASE_HOST=parts["host"],
        HOOKPOST_DATABASE_NAME=parts["dbname"],
    )
    with psycopg.connect(get_settings().database_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (parts["dbname"],)


def test_the_admin_token_comes_from_its_secret(aws, env):
    env(
        HOOKPOST_ADMIN_TOKEN_SECRET_ID=secret("token-from-secrets-manager"), HOOKPOST_ADMIN_TOKEN=""
    )
    assert get_settings().admin_token == "token-from-secrets-manager"


def test_the_admin_token_is_kept_within_its_bound(aws, env):
    arn = secret("first")
    env(HOOKPOST_ADMIN_TOKEN_SECRET_ID=arn)
    assert get_settings().admin_token == "first"
    boto3.client("secretsmanager").put_secret_value(SecretId=arn, SecretString="second")
    # Read at most once a minute (tests/integration/test_credential_rotation.py: then again).
    assert get_settings().admin_token == "first"


def test_a_missing_secret_fails_loudly(aws, env):
    env(HOOKPOST_ADMIN_TOKEN_SECRET_ID="arn:aws:secretsmanager:eu-west-1:123456789012:secret:no")
    with pytest.raises(GetParameterError):
        assert get_settings().admin_token


def test_without_secrets_the_environment_is_used(env):
    # No moto here: reaching AWS would fail for want of credentials.
    env(DATABASE_URL="postgresql://localhost/x", HOOKPOST_ADMIN_TOKEN="plain")
    assert (get_settings().database_url, get_settings().admin_token) == (
        "postgresql://localhost/x",
        "plain",
    )


def test_the_sealing_key_comes_from_secrets_manager(aws, env):
    import boto3

    from hookpost.config import get_settings
    from hookpost.secrets_at_rest import seal, unseal

    arn = boto3.client("secretsmanager").create_secret(
        Name="hookpost-sealing", SecretString="a-long-random-string-from-secrets-manager"
    )["ARN"]
    env(HOOKPOST_ENCRYPTION_KEY_SECRET_ID=arn, HOOKPOST_ENCRYPTION_KEY="")
    assert get_settings().encryption_key == "a-long-random-string-from-secrets-manager"
    sealed = seal("whsec_abc")
    assert sealed != "whsec_abc" and unseal(sealed) == "whsec_abc"

"""Hookpost: webhook delivery on PostgreSQL, for AWS Lambda and local development."""

__version__ = "0.1.0"

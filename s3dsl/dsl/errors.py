"""The error type and hints, re-exported from the bottom layer (`s3dsl.errors`) so that existing
imports keep working."""

from s3dsl.errors import S3DSLError, did_you_mean, printable

__all__ = ["S3DSLError", "did_you_mean", "printable"]

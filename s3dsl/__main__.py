"""`python -m s3dsl` is the `s3dsl` command."""

from s3dsl.cli import main

main()

"""Bridges from other tools into s3dsl (optional extras): `lmeval` for lm-evaluation-harness."""

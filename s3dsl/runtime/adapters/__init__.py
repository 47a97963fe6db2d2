"""Adapters that expose external models through the runtime's `MaskedLM` protocol."""

from s3dsl.runtime.adapters.hf import HFMaskedLM, HFTokenizer, load_hf_model

__all__ = ["HFMaskedLM", "HFTokenizer", "load_hf_model"]

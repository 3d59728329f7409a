"""Reproducibility harness for BERT module-replacement compression (BERT-of-Theseus)."""

__version__ = "0.1.0"

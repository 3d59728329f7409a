"""Encoders: pretrained models loaded offline (models) and the adapters that run each family's layers one by one, checked against the model's own forward (adapters)."""

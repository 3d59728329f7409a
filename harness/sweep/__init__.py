"""Sweeps: a sweep config checked (schema) and expanded into runs (plan), run resumably and in parallel (execute); the presets ship here."""

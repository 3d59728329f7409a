"""Training: the run's configuration and key (config), the one shared training loop every strategy's phases go through (loop), per-run diagnostics (diagnostics)."""

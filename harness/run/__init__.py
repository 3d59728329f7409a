"""One run: execute a RunConfig end to end (runner), with the fine-tuned predecessor from its cache (predecessor); identity holds what names a run."""

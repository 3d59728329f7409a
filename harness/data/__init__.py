"""Data: pinned sources fetched from package registries (sources), tasks parsed from them (tasks), seeded stratified splits and cached tokenisation (splits)."""

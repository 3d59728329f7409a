"""Reports: the pipeline from a store or a runs CSV to tables, figures and markdown (pipeline), the markdown itself (markdown), the figures (plots, budget_plots)."""

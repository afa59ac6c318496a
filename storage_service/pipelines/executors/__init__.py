"""pipelines/executors."""

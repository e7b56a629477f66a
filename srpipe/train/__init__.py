"""The training engine: losses of each paper, the loop, checkpoints, EMA and MLflow tracking."""

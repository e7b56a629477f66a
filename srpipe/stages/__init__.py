"""Pipeline stages: one typed function per stage; the CLI, dvc.yaml and the Prefect flow all call these."""

"""Shared by trainer, predictor and the ingest function: settings, the iris domain, CSV scanning, logging and the model
store."""

"""Shared by trainer, predictor and the ingest function: settings, schema, logging and the model store."""

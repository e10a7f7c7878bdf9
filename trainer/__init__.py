"""The trainer: reads validated CSVs from data/, trains, gates on quality and publishes a signed artifact."""

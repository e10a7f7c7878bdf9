"""The ingest Cloud Function: validates CSVs dropped into incoming/ and promotes them to data/ or quarantine/."""

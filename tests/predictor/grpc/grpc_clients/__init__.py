"""Scenarios run by real V2 gRPC clients (tritonclient, kserve) from their own virtualenv; each prints JSON."""

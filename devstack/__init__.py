"""Local development stack: real emulators (fake-gcs-server, Pub/Sub emulator) on loopback."""

"""The fault and abuse suite: outages, bad artifacts and bad input against the running stack."""

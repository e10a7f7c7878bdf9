"""The feedback joiner: labelled predictions become training data, and each model version's live accuracy.

`python -m trainer.feedback` runs one pass; the data watcher (`python -m trainer --watch`) runs one every
FEEDBACK_JOIN_INTERVAL seconds. See trainer.feedback.join for a pass, trainer.feedback.ledger for what makes a pass
safe to die in, trainer.feedback.accuracy for the live accuracy document.
"""

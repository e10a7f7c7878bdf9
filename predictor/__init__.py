"""The predictor: a Flask app under gunicorn that serves the newest verified model and hot-swaps it."""

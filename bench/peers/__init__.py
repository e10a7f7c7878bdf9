"""The predictor benchmark's peers (a bare Flask app, MLServer), their virtualenvs, processes and the load generator."""

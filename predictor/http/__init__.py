"""The predictor over HTTP (Flask): the app factory, its blueprints, the JSON contract and its errors."""

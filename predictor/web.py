"""The page for people at GET /: a measurement form and a live model panel (static assets served by the app)."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("web", __name__, static_folder="static", template_folder="templates")


@bp.get("/")
def index() -> str:
    return render_template("index.html")

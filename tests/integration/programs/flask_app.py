"""A Flask application with a leak, served by gunicorn in the staging test:
/leak keeps 1000 bytes per request (LEAK); /ok keeps nothing."""
from flask import Flask

app = Flask(__name__)
KEPT = []


@app.route("/leak")
def leak():
    KEPT.append(bytes(1000))  # MARK:LEAK
    return "kept %d\n" % len(KEPT)


@app.route("/ok")
def ok():
    return "ok\n"

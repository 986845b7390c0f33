"""pymem demo: a toy request handler with a leaky cache, a transient peak
while building a report, and two snapshots to measure growth.

    build/pymem run examples/demo.py
    build/pymem diff <capture> warm grown
"""
import json

try:
    import pymem  # present in any process running under pymem
except ImportError:
    pymem = None

_SESSIONS = {}  # never evicted: the leak


def handle(request_id):
    payload = json.dumps({"id": request_id, "items": list(range(50))})
    _SESSIONS[request_id] = payload.encode() * 4  # leaks ~1 KiB per request
    return len(payload)


def build_report(n):
    rows = [("row-%d" % i) * 20 for i in range(n)]  # transient: the peak
    return sum(len(r) for r in rows)


def main():
    for i in range(2000):
        handle(i)
    if pymem:
        pymem.snapshot("warm")
    for i in range(2000, 6000):
        handle(i)
    if pymem:
        pymem.snapshot("grown")
    print("report bytes:", build_report(200000))
    print("sessions:", len(_SESSIONS))


if __name__ == "__main__":
    main()

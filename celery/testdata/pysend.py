"""The Python producer of the interoperability tests: sends go.* tasks the
way a Celery app does, awaits their results through Celery's RPC backend,
and prints what it saw as JSON. Usage: pysend.py COMMAND [ARG], with the
environment of pyapp.py.

  bulk N     N go.add calls, half send_task() and half .delay(), args and
             kwargs mixed; every result awaited and checked
  eta        go.now with a countdown, and with an expiry that passes first
  chain      a chain of three Go steps, a callback, an errback
  limit      go.slow with a soft time limit
  retry      go.flaky, which fails once, and go.nope, which Go does not have
  malformed  messages warren must refuse, published raw with Kombu
"""
import json
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

from celery import chain
from kombu import Connection, Producer

from pyapp import app, go_add, go_errback, go_fail, go_flaky, go_mul, go_now, go_slow, go_sub


def failure(res):
    """Awaits res, which must fail, and returns the exception as Python sees it."""
    try:
        value = res.get(timeout=60)
    except Exception as e:  # noqa: BLE001 - the exception is the point
        return {"type": type(e).__name__, "message": str(e), "state": res.state}
    return {"type": None, "value": value}


def bulk(n):
    sent = []
    for i in range(n):
        if i % 2:
            r = app.send_task("go.add", args=[i, 2 * i], kwargs={"label": f"n{i}"})
        else:
            r = go_add.delay(i, y=2 * i, label=f"n{i}")
        sent.append((i, r))
    bad = []
    for i, r in sent:
        got = r.get(timeout=60)
        want = {"sum": 3 * i, "label": f"n{i}"}
        if got != want:
            bad.append({"i": i, "got": got, "want": want})
    return {"sent": len(sent), "bad": bad[:5], "ids": [r.id for _, r in sent]}


def eta():
    sent_at = time.time()
    on_time = go_now.apply_async(("eta",), countdown=2)
    # A naive datetime, as datetime.utcnow() gives: Celery and warren read it as UTC.
    naive_eta = datetime.utcnow() + timedelta(seconds=2)
    naive = go_now.apply_async(("naive",), eta=naive_eta)
    # Due in 3 s but expiring in 1 s: Celery also sets the message's AMQP
    # expiration (1 s), which a consumer that takes it at once beats.
    late = go_now.apply_async(("late",), countdown=3,
                              expires=datetime.now(timezone.utc) + timedelta(seconds=1))
    return {
        "sent_at": sent_at,
        "ran_at": on_time.get(timeout=60),
        "naive_eta": naive_eta.replace(tzinfo=timezone.utc).timestamp(),
        "naive_ran_at": naive.get(timeout=60),
        "expired": failure(late),
        "expired_id": late.id,
    }


def workflows():
    res = chain(go_mul.s(2, 3), go_mul.s(4), go_sub.s(1)).apply_async()
    out = {"chain": res.get(timeout=60),
           "chain_ids": [res.parent.parent.id, res.parent.id, res.id]}
    cb = go_mul.apply_async((5, 5), link=go_sub.s(5))
    out["linked"], out["linked_id"] = cb.get(timeout=60), cb.id
    fails = go_fail.apply_async(("boom",), link_error=go_errback.s("note"))
    out["failed"], out["failed_id"] = failure(fails), fails.id
    return out


def limit():
    return failure(go_slow.apply_async((10,), soft_time_limit=0.5))


def retried():
    flaky = go_flaky.delay("again")
    return {"flaky": flaky.get(timeout=60), "flaky_id": flaky.id,
            "unknown": failure(app.send_task("go.nope", args=[1]))}


def malformed():
    queue = os.environ["WARREN_GO_QUEUE"]
    ids = {k: str(uuid.uuid4()) for k in ("not_a_list", "v1", "pickle", "gzip", "chord", "chord_step", "group_step")}
    v2 = {"lang": "py", "task": "go.add", "retries": 0, "timelimit": [None, None],
          "root_id": None, "parent_id": None, "group": None}
    sig = {"task": "go.add", "args": [1, 1], "kwargs": {}, "options": {},
           "subtask_type": None, "immutable": False, "chord_size": None}
    with Connection(os.environ["WARREN_BROKER"]) as conn:
        p = Producer(conn, routing_key=queue, serializer="json")  # the default exchange
        p.publish({"x": 1}, headers=dict(v2, id=ids["not_a_list"]),
                  correlation_id=ids["not_a_list"])
        # Protocol 1: no task header; name, id and arguments in the body.
        p.publish({"task": "go.add", "id": ids["v1"], "args": [1, 2], "kwargs": {},
                   "retries": 0, "eta": None, "expires": None})
        p.publish([[1, 1], {}, {"callbacks": None, "errbacks": None, "chain": None,
                                "chord": dict(sig, task="go.sum")}],
                  headers=dict(v2, id=ids["chord"]), correlation_id=ids["chord"])
        p.publish([[1, 1], {}, {"callbacks": None, "errbacks": None, "chord": None,
                                "chain": [dict(sig, subtask_type="group")]}],
                  headers=dict(v2, id=ids["group_step"]), correlation_id=ids["group_step"])
        # A chain step frozen as part of a chord carries it in its options.
        p.publish([[1, 1], {}, {"callbacks": None, "errbacks": None, "chord": None,
                                "chain": [dict(sig, options={"chord": dict(sig, task="go.sum")})]}],
                  headers=dict(v2, id=ids["chord_step"]), correlation_id=ids["chord_step"])
    app.send_task("go.add", args=[1, 2], task_id=ids["pickle"], serializer="pickle")
    app.send_task("go.add", args=[1, 2], task_id=ids["gzip"], compression="gzip")
    return ids


def main():
    cmd = sys.argv[1]
    if cmd == "bulk":
        out = bulk(int(sys.argv[2]))
    elif cmd == "eta":
        out = eta()
    elif cmd == "chain":
        out = workflows()
    elif cmd == "limit":
        out = limit()
    elif cmd == "retry":
        out = retried()
    elif cmd == "malformed":
        out = malformed()
    else:
        sys.exit(f"unknown command {cmd}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()

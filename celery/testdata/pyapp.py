"""The Celery app of the interoperability tests (celery/interop_test.go).

Its worker runs the py.* tasks, which Go enqueues; its producer side
(pysend.py) sends go.* tasks, which a warren worker runs. Everything is set
through the environment so that each test has queues of its own:

  WARREN_BROKER     the broker, as Kombu writes it (amqp://guest:guest@127.0.0.1:5672//)
  WARREN_PY_QUEUE   the queue the Celery worker consumes (its default queue)
  WARREN_GO_QUEUE   the queue go.* tasks are routed to, which warren consumes
  WARREN_RECORD     a file each py.* task appends one JSON line to
"""
import json
import os
import time

from celery import Celery

app = Celery("pyapp", broker=os.environ["WARREN_BROKER"], backend="rpc://")
app.conf.update(
    task_default_queue=os.environ["WARREN_PY_QUEUE"],
    # go.* tasks are Go's: Celery routes them to the queue warren consumes.
    task_routes={"go.*": {"queue": os.environ["WARREN_GO_QUEUE"]}},
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
)


def record(**fields):
    with open(os.environ["WARREN_RECORD"], "a") as f:
        f.write(json.dumps(fields) + "\n")


@app.task(name="py.add", bind=True)
def py_add(self, x, y, label=None):
    """Adds, and records the call: Go's args and kwargs as Python saw them."""
    record(task="py.add", id=self.request.id, root_id=self.request.root_id,
           x=x, y=y, label=label, at=time.time())
    return {"sum": x + y, "label": label}


@app.task(name="py.when", bind=True)
def py_when(self, label):
    """Returns when it ran, for ETAs sent from Go."""
    now = time.time()
    record(task="py.when", id=self.request.id, label=label, at=now,
           eta=self.request.eta, expires=self.request.expires)
    return now


@app.task(name="py.fail")
def py_fail(why):
    raise ValueError(why)


# Stubs of the Go tasks, so that Python code calls them as a Celery app
# calls any task (.delay(), .s()); warren's worker runs them, never these.
@app.task(name="go.add")
def go_add(x, y, label=None):
    raise NotImplementedError("runs in Go")


@app.task(name="go.mul")
def go_mul(x, by):
    raise NotImplementedError("runs in Go")


@app.task(name="go.sub")
def go_sub(x, minus):
    raise NotImplementedError("runs in Go")


@app.task(name="go.now")
def go_now(label):
    raise NotImplementedError("runs in Go")


@app.task(name="go.slow")
def go_slow(seconds):
    raise NotImplementedError("runs in Go")


@app.task(name="go.errback")
def go_errback(task_id, note):
    raise NotImplementedError("runs in Go")


@app.task(name="go.flaky")
def go_flaky(label):
    raise NotImplementedError("runs in Go")


@app.task(name="go.fail")
def go_fail(why):
    raise NotImplementedError("runs in Go")

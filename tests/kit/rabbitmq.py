"""The running RabbitMQ, used only through vhosts and users of our own.

RabbitMQ cannot be started cheaply per run, so the suite uses the one that
runs, but never its default vhost "/" and never anything it did not create:
every vhost (and user) made here has a unique name and is deleted by whoever
made it. The one exception is the URL forms that name "/" (``//``,
``/%2F``): a test proves them with a passive look-up of a queue name that
does not exist, which reads nothing and writes nothing.

Environment (documented in the README):
  CELERY_CHECKS_TEST_AMQP_HOST  default 127.0.0.1
  CELERY_CHECKS_TEST_AMQP_PORT  default 5672
The user guest/guest must be allowed from there; vhosts and users are made
with rabbitmqctl on this machine.
"""

import os
import shutil
import subprocess
import uuid

HOST = os.environ.get("CELERY_CHECKS_TEST_AMQP_HOST", "127.0.0.1")
PORT = int(os.environ.get("CELERY_CHECKS_TEST_AMQP_PORT", "5672"))


def available():
    """None when the broker answers and rabbitmqctl runs, else why not."""
    from tests.kit.waiting import port_open

    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl not installed (Debian: apt install rabbitmq-server)"
    if not port_open(PORT, HOST):
        return "RabbitMQ is not running on %s:%d (scripts/test starts it as root)" % (HOST, PORT)
    return None


def rabbitmqctl(*args, check=True):
    return subprocess.run(["rabbitmqctl", "-q"] + list(args), check=check,
                          capture_output=True, text=True)


def unique(prefix):
    return "%s-%d-%s" % (prefix, os.getpid(), uuid.uuid4().hex[:6])


class Vhost:
    """A vhost of our own, guest allowed on it: ``with Vhost("cc-x") as v``."""

    def __init__(self, prefix="cc-test"):
        self.name = unique(prefix)
        self.url = url(self.name)

    def create(self):
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def delete(self):
        rabbitmqctl("delete_vhost", self.name, check=False)

    def allow(self, user, configure=".*", write=".*", read=".*"):
        rabbitmqctl("set_permissions", "-p", self.name, user, configure, write, read)

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc_info):
        self.delete()


class User:
    """A user of our own (deleted by whoever made it)."""

    def __init__(self, prefix="cc-user", password=None):
        self.name = unique(prefix)
        self.password = password or uuid.uuid4().hex

    def create(self):
        rabbitmqctl("add_user", self.name, self.password)
        return self

    def delete(self):
        rabbitmqctl("delete_user", self.name, check=False)

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc_info):
        self.delete()


def url(vhost, user="guest", password="guest"):
    from urllib.parse import quote

    return "amqp://%s:%s@%s:%d/%s" % (user, password, HOST, PORT, quote(vhost, safe=""))


class Queues:
    """Per-test queue names on a vhost of ours, deleted after the test."""

    def __init__(self, vhost):
        self.vhost = vhost
        self.url = url(vhost)
        self.queues = []
        self._connection = None

    def queue_name(self, suffix="q"):
        name = "cc-%s-%s" % (uuid.uuid4().hex[:8], suffix)
        self.queues.append(name)
        return name

    def connection(self):
        import pika

        if self._connection is None or self._connection.is_closed:
            self._connection = pika.BlockingConnection(pika.URLParameters(self.url))
        return self._connection

    def channel(self):
        return self.connection().channel()

    def cleanup(self):
        try:
            channel = self.channel()
            for name in self.queues:
                channel.queue_delete(name)
            self._connection.close()
        except Exception:
            pass  # the vhost goes at the end of the session anyway

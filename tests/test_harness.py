"""The fixtures later checks rely on work against the real services."""

import pytest

from tests.app import app


def test_redis_db_is_isolated_and_empty(redis_client, redis_db):
    assert 1 <= redis_db <= 15
    assert redis_client.dbsize() == 0
    redis_client.set("probe", "1")


def test_rabbitmq_queue_names_are_unique_and_cleaned(rabbitmq):
    first, second = rabbitmq.queue_name(), rabbitmq.queue_name()
    assert first != second
    channel = rabbitmq.channel()
    channel.queue_declare(first)
    assert channel.queue_declare(first, passive=True).method.message_count == 0


@pytest.mark.slow
def test_worker_starts_answers_ping_and_stops(celery_worker, redis_url):
    worker = celery_worker.start(redis_url, pool="solo")
    app.conf.broker_url = redis_url
    try:
        replies = app.control.ping(destination=[worker.name], timeout=5)
    finally:
        app.close()
    assert replies and worker.name in replies[0]
    worker.stop()
    assert worker.process.poll() is not None


@pytest.mark.slow
def test_prefork_worker_on_rabbitmq(celery_worker, rabbitmq):
    queue = rabbitmq.queue_name("work")
    worker = celery_worker.start(rabbitmq.url, pool="prefork", concurrency=2, queues=[queue])
    channel = rabbitmq.channel()
    declared = channel.queue_declare(queue, passive=True)
    assert declared.method.consumer_count == 1
    worker.stop()
    assert rabbitmq.channel().queue_declare(queue, passive=True).method.consumer_count == 0

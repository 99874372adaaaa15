"""The queues of a RabbitMQ vhost: a passive queue_declare each, on one
connection (pika alone: no celery, no kombu)."""

from celery_checks.plugin.perfdata import shown
from celery_checks.plugin.policy import Unreachable
from celery_checks.queue.facts import Depth


def amqp_depths(target, queues, timeout):
    """[Depth] from passive declares on one connection, closed always."""
    import pika
    from pika.exceptions import AMQPError, ChannelClosedByBroker

    from celery_checks.connect.amqp import amqp_errors, pika_parameters

    depths = []
    with amqp_errors(target.url, target.role):
        connection = pika.BlockingConnection(pika_parameters(target.url, timeout))
        try:
            channel = connection.channel()
            for queue in queues:
                try:
                    ok = channel.queue_declare(queue=queue, passive=True)
                except ChannelClosedByBroker as exc:
                    if exc.reply_code != 404:
                        raise Unreachable("broker %s refused queue %s: %s %s" % (
                            target.shown, shown(queue), exc.reply_code, exc.reply_text))
                    depths.append(Depth(queue))
                    channel = connection.channel()  # a 404 closes the channel
                    continue
                depths.append(Depth(queue, ok.method.message_count,
                                    consumers=ok.method.consumer_count))
        finally:
            try:
                connection.close()
            except (AMQPError, OSError):
                pass  # already closed or gone: nothing left to leak
    return depths

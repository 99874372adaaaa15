"""SCAFFOLD — replaced by the heartbeat issue (#4)."""


def register_heartbeat_task(app):
    pass

"""SCAFFOLD — replaced by the pulse emitter issue (#6)."""


def register_pulse(app):
    pass

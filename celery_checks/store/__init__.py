"""What celery-checks keeps in Redis, shared by the worker side (which
records), the trigger (which records publishes) and the checks (which read):

- :mod:`.heartbeats`  one hash per monitored queue, written by Lua on the store's clock
"""

"""What a source of worker facts returns: one Reply per node it heard of."""

from celery_checks.plugin.perfdata import number


class Observed(list):
    """The replies a source saw, with what Celery said about them, when it
    said something (``No nodes replied within time constraint``), and how
    the listening ended (-vv), when the source says."""

    note = None
    ended = None


class Reply:
    """One node as a source saw it."""

    def __init__(self, name, ok=True, status="OK", **facts):
        self.name = name
        self.ok = ok  # answered as a healthy worker does
        self.status = status
        self.facts = facts  # rtt, active, processed, sw_ver, hb_age, freq

    def describe(self):
        parts = [self.status if not self.ok else "online"]
        facts = self.facts
        if "rtt" in facts:
            parts.append("rtt %ss" % number(facts["rtt"]))
        if "hb_age" in facts:
            parts.append("heartbeat %ss ago" % number(facts["hb_age"], 1))
        for key in ("active", "processed"):
            if key in facts:
                parts.append("%s %s" % (key, facts[key]))
        if facts.get("sw_ver"):
            parts.append("celery %s" % facts["sw_ver"])
        if facts.get("pid"):
            parts.append("pid %s" % facts["pid"])
        return ", ".join(parts)


def excerpt(text, limit=40):
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")

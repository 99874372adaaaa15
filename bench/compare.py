"""Issue 16's figures side by side for every library set of a run: each
Redis check against its floor and 20 MiB, and how the checks' cost grows
with queues and workers, each with a verdict per set."""

from bench import answering
from bench.budgets import Judge, answering_taken_out, paired, verdict
from bench.scenarios import FLOORS

FLOOR_BOUND = 1.5
RSS_BOUND = 20  # MiB

# (check, what it is, its floor: floor-socket- and the phase it ran in)
AT_FLOOR = (("queue-redis-1", "queue, 1 queue", "floor-socket-services"),
            ("heartbeat-1", "heartbeat, 1 queue", "floor-socket-workers"),
            ("workers-ping-2", "workers, ping, 2 workers", "floor-socket-workers"))
# (larger case, smallest case, what it is, bound)
GROWTH = (("queue-redis-100", "queue-redis-1", "queue, 100 queues ÷ 1 queue", 1.3),
          ("queue-redis-1000", "queue-redis-1", "queue, 1,000 queues ÷ 1 queue", 1.3),
          ("heartbeat-100", "heartbeat-1", "heartbeat, 100 queues ÷ 1 queue", 1.3),
          ("heartbeat-1000", "heartbeat-1", "heartbeat, 1,000 queues ÷ 1 queue", 1.3),
          ("workers-ping-10", "workers-ping-2", "workers, ping, 10 workers ÷ 2", 1.5),
          ("workers-ping-50", "workers-ping-2", "workers, ping, 50 workers ÷ 2", 1.5),
          ("workers-events-10", "workers-events-2", "workers, events, 10 workers ÷ 2", 1.5),
          ("workers-events-50", "workers-events-2", "workers, events, 50 workers ÷ 2", 1.5))


# The ping's growth beside what the workers' own answering adds, measured by
# a client of no cost doing the same exchange (answering.reference_scenario):
# (larger case, smallest case, their sizes, what it is, bound).
BESIDE_THE_WORKERS = (("workers-ping-50", "workers-ping-2", 50, 2, "workers, ping, 50 ÷ 2", 1.5),)


def ratio_cell(judge, key, base_key, bound):
    """(shown, verdict) of the median per-round wall ratio key ÷ base_key."""
    s, base = judge.get(key), judge.get(base_key)
    if s is None or base is None:
        return "", judge.missing(key if s is None else base_key)
    wall = paired(s, base)
    return "%.2f× (CPU %.2f×)" % (wall, paired(s, base, "cpu")), verdict(wall <= bound)


def beside_the_workers(judge, key, base_key, size, base_size, what, bound):
    """Two rows: how much the same exchange by redis-cli grows (the workers'
    answering, which no client waits less for) against what ``bound`` leaves
    the check, and the check's growth with that taken out, per round."""
    keys = (key, base_key, answering.REFERENCE % size, answering.REFERENCE % base_size)
    cases = [judge.get(k) for k in keys]
    answered = "%s: what the workers' answering adds (the same messages by `redis-cli`)" % what
    beyond = "%s, less what the workers' answering adds" % what
    leaves = "≤ what %.1f× leaves" % bound
    if None in cases:
        missing = judge.missing(keys[cases.index(None)])
        return [(answered, leaves, "", missing), (beyond, "≤ %.1f×" % bound, "", missing)]
    adds, rest = answering_taken_out(*cases)
    allowed = (bound - 1) * cases[1].stat("wall")
    return [(answered, leaves, "+%.1f ms (%.1f× leaves +%.1f ms)" % (
                adds * 1000, bound, allowed * 1000),
             "within reach" if adds <= allowed else "**out of reach of any client here**"),
            (beyond, "≤ %.1f×" % bound, "%.2f×" % rest, verdict(rest <= bound))]


def rss_cell(judge, key):
    s = judge.get(key)
    if s is None:
        return "", judge.missing(key)
    rss = s.stat("rss")
    return "%.1f MiB (max %.1f)" % (rss, s.stat("rss", max)), verdict(rss <= RSS_BOUND)


def rows(by_key):
    """[(figure, budget, shown, verdict)] of one library set's scenarios."""
    judge = Judge(by_key)
    result = []
    for key, what, floor in AT_FLOOR:
        result.append(("%s × its floor" % what, "≤ %.1f×" % FLOOR_BOUND)
                      + ratio_cell(judge, key, floor, FLOOR_BOUND))
        result.append(("%s, peak RSS" % what, "≤ %d MiB" % RSS_BOUND) + rss_cell(judge, key))
    for key, base_key, what, bound in GROWTH:
        result.append((what, "≤ %.1f×" % bound) + ratio_cell(judge, key, base_key, bound))
        for beside in BESIDE_THE_WORKERS:
            if beside[0] == key:
                result += beside_the_workers(judge, *beside)
    return result


def table(views):
    """Markdown lines for [(set name, {key: scenario})], one column pair per
    set; none when the run measured none of it (--only)."""
    columns = [(name, rows(by_key)) for name, by_key in views]
    if not any(shown for _, cells in columns for _, _, shown, _ in cells):
        return []
    several = len(columns) > 1
    names = ["`%s`" % name for name, _ in columns] if several else ["measured"]
    lines = ["", "### Issue 16%s" % (", library sets side by side" if several else ""), "",
             "Each Redis check against its floor (`python -c \"%s\"`, with the same libraries, "
             "in the same rounds) and its peak RSS (median of the runs, their max in brackets); "
             "then each larger case against the smallest. Ratios are medians of per-round "
             "wall-time ratios (CPU in brackets); the verdict judges the wall time." % (
                 FLOORS["socket"]), "",
             "| figure | budget | " + " | ".join("%s | verdict" % name for name in names) + " |",
             "|---|---|" + "---|---|" * len(names)]
    for number, (figure, budget, _, _) in enumerate(columns[0][1]):
        cells = [cells[number] for _, cells in columns]
        lines.append("| %s | %s | %s |" % (figure, budget, " | ".join(
            "%s | %s" % (shown, judged) for _, _, shown, judged in cells)))
    return lines

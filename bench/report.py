"""The Markdown of a run: what ran where, issue 16's figures side by side for
every library set, then for each set the results of each phase, where the
time goes and the budgets; written into docs/performance.md between the
``bench:begin``/``bench:end`` markers (``--label`` names another block)."""

import os
import platform
import re
import subprocess

from bench import answering
from bench import compare
from bench import throughput as worker_throughput
from bench.budgets import budgets
from bench.install import ROOT
from bench.measure import HEAVY
from bench.scenarios import slow_rounds
from bench.sets import view


def markers(label=None):
    """The comments that delimit a run's block in docs/performance.md."""
    suffix = " " + label if label else ""
    return "<!-- bench:begin%s -->" % suffix, "<!-- bench:end%s -->" % suffix


def fmt_s(value):
    return "–" if value is None else "%.3f" % value


def machine_description(started, load_before, load_after, args, sets):
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                memory = "%.1f GiB" % (int(line.split()[1]) / 1024.0 / 1024.0)
    except OSError:
        pass
    redis_version = rabbit_version = "?"
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=30)
        redis_version = re.search(r"v=(\S+)", out.stdout).group(1)
    except Exception:
        pass
    try:
        out = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True, timeout=30)
        rabbit_version = out.stdout.strip() or "?"
    except Exception:
        pass
    try:
        revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                "celery_checks"], capture_output=True, text=True).stdout.strip()
        revision += " (celery_checks/ with uncommitted changes)" if dirty else ""
    except OSError:
        revision = "?"
    if len(sets) == 1:
        interpreters = ["- checks run on %s: %s" % (sets[0].python, sets[0].versions)]
    else:
        interpreters = ["- library sets, measured side by side in the same rounds:"] + [
            "  - `%s`: %s: %s" % (lib.name, lib.python, lib.versions) for lib in sets] + [
            "- run once, with the first set (`%s`): the tools (`redis-cli`, `rabbitmqctl`, "
            "`celery status`, `celery inspect ping`) and the worker throughput" % sets[0].name]
    return [
        "- date: %s; code: %s" % (started.strftime("%Y-%m-%d %H:%M %Z"), revision),
        "- machine: %d CPUs (nproc), %s, %s RAM, %s %s" % (
            os.cpu_count() or 0, model, memory, platform.system(), platform.release()),
        "- load average (1 min) at start / end: %.2f / %.2f" % (load_before[0], load_after[0]),
    ] + interpreters + [
        "- services: Redis %s, RabbitMQ %s; workers: celery solo pool on tests/app.py" % (
            redis_version, rabbit_version),
        "- runs: %d measured rounds after %d warm-up runs (slow scenarios: %d rounds)" % (
            args.runs, args.warmup, slow_rounds(args.runs)),
    ]


def render(results, args, sets, started, load_before, load_after, throughput=None,
           answers=None):
    begin, end = markers(args.label)
    lines = [begin, "", "### Run", ""]
    lines += machine_description(started, load_before, load_after, args, sets)
    views = [(lib.name, view(results, lib)) for lib in sets]
    lines += compare.table([(name, {s.key: s for s in scenarios}) for name, scenarios in views])
    lines += answering.report(answers)  # the workers' side, once (the first set's check)
    if len(sets) == 1:
        lines += set_report(views[0][1], "###", throughput)
    # the throughput ran once, with the first set's interpreter
    elsewhere = "measured with the first set (`%s`)" % sets[0].name if throughput else None
    for number, (name, scenarios) in enumerate(views if len(sets) > 1 else ()):
        lines += ["", "### Library set `%s`" % name]
        lines += set_report(scenarios, "####", throughput if number == 0 else None, elsewhere)
    lines += ["", end]
    return "\n".join(lines)


def phase_bases(results):
    """scenario -> (``python -c pass``, ``import nagiosplugin``) of its phase."""
    found = {}
    for s in results:
        for prefix in ("python-", "floor-nagiosplugin-"):
            if s.key.startswith(prefix):
                found.setdefault((s.phase, prefix), s)
    return lambda s: (found.get((s.phase, "python-")), found.get((s.phase, "floor-nagiosplugin-")))


def set_report(results, level, throughput=None, elsewhere=None):
    """Results, before and after, where the time goes and the budgets of
    one library set's scenarios (its own and the shared ones); ``level``:
    the Markdown heading of each part; ``elsewhere``: why a set without
    ``throughput`` has none, when --only is not the reason."""
    by_key = {s.key: s for s in results}
    bases = phase_bases(results)
    lines = ["", "%s Results" % level, "",
             "Medians, min–max in brackets. Ratios are wall-time medians divided by "
             "the baseline's median in the same phase; × floor compares with importing "
             "the libraries the check cannot do without (CPU ratio in brackets). "
             "Relative budgets use the median of per-round ratios.", ""]
    phase = None
    header = ("| scenario | state | wall s | CPU s | peak RSS MiB | × `python -c pass` "
              "| × `import nagiosplugin` | × floor (CPU) | × tool | imports |")
    for s in results:
        if s.phase != phase:
            phase = s.phase
            lines += ["", "%s# %s" % (level, phase), "", header, "|" + "---|" * 10]
        py, np = bases(s)
        if s.status != "ok":
            lines.append("| %s | %s | | | | | | | | |" % (s.title, s.status))
            continue
        tool = by_key.get(s.tool) if s.tool else None
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s.title,
            state_of(s),
            "%s (%s–%s)" % (fmt_s(s.stat("wall")), fmt_s(s.stat("wall", min)), fmt_s(s.stat("wall", max))),
            fmt_s(s.stat("cpu")),
            "%.1f (max %.1f)" % (s.stat("rss"), s.stat("rss", max)),
            ratio(s, py), ratio(s, np), floor_ratio(s),
            ("%s %s" % (ratio(s, tool), tool.title)) if tool else "",
            "" if s.imports is None else (", ".join(sorted(set(HEAVY) & s.imports)) or "none"),
        ))
    lines += before_after(results, by_key, level)
    lines += ["", "%s Where the time goes" % level, "",
              "CPU medians of each check against its floor (importing the libraries it "
              "cannot do without, measured in the same phase); what is left is the "
              "check's own work. Waiting = wall − CPU (round trips, replies, grace).", "",
              "| check | CPU s | floor | floor CPU s | own CPU ms | waiting s |",
              "|---|---|---|---|---|---|"]
    for s in results:
        base = s.floor_base
        if s.kind != "check" or s.status != "ok" or base is None or not base.samples:
            continue
        lines.append("| %s | %.3f | %s | %.3f | %.0f | %.3f |" % (
            s.title, s.stat("cpu"), s.floor, base.stat("cpu"),
            (s.stat("cpu") - base.stat("cpu")) * 1000, max(0.0, s.stat("wall") - s.stat("cpu"))))
    lines += worker_throughput.report(throughput, level)
    lines += ["", "%s Budgets" % level, "", "| budget | measured | verdict |", "|---|---|---|"]
    absent = elsewhere if throughput is None and elsewhere else "not measured (--only)"
    for text, measured, verdict in budgets(by_key, throughput, absent):
        lines.append("| %s | %s | %s |" % (text, measured, verdict))
    return lines


def before_after(results, by_key, level):
    """Each scenario measured on --before REV too: both, side by side, and
    the median of per-round ratios (same rounds, same load)."""
    from bench.budgets import paired

    rows = []
    for old in results:
        new = by_key.get(old.key[:-len("-before")]) if old.key.endswith("-before") else None
        if new is None or "ok" not in (old.status, new.status) or \
                old.status != "ok" or new.status != "ok":
            continue
        rows.append("| %s | %s / %s | %.2f× | %.1f / %.1f |" % (
            new.title, fmt_s(old.stat("wall")), fmt_s(new.stat("wall")), paired(new, old),
            old.stat("rss", max), new.stat("rss", max)))
    if not rows:
        return []
    return ["", "%s Before and after" % level, "",
            "The same command on the --before revision's code, in the same rounds.", "",
            "| scenario | wall s before / after | after ÷ before | peak RSS MiB before / after |",
            "|---|---|---|---|"] + rows


def state_of(s):
    rcs = {sample.rc for sample in s.samples}
    names = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
    if s.kind == "baseline":
        return "exit " + "/".join(str(rc) for rc in sorted(rcs))
    return "/".join(names.get(rc, str(rc)) for rc in sorted(rcs))


def ratio(s, base):
    if base is None or base.status != "ok" or not base.samples:
        return "–"
    return "%.2f" % (s.stat("wall") / base.stat("wall"))


def floor_ratio(s):
    base = s.floor_base
    if base is None or base.status != "ok" or not base.samples:
        return ""
    return "%.2f (%.2f) %s" % (s.stat("wall") / base.stat("wall"),
                               s.stat("cpu") / base.stat("cpu"), s.floor)


def write_doc(path, report, label=None):
    begin, end = markers(label)
    path.parent.mkdir(exist_ok=True)
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        path.write_text(head + report + tail)
    elif text:
        path.write_text(text.rstrip("\n") + "\n\n" + report + "\n")
    else:
        path.write_text(
            "# Performance\n\nMeasured by `.venv/bin/python bench/run.py` "
            "(see bench/run.py for the method).\n\n" + report + "\n")

"""Bad input, generated: whatever an operator or a broker feeds a check, the
answer is a valid plugin answer.

- exit 0-3; a usage error is 3 (UNKNOWN), never argparse's 2;
- no traceback;
- one status line ``NAME STATE - text`` whose text holds no ``|``;
- perfdata that parses under the strict grammar of tests/plugin.py
  (run_check parses it and fails on anything a monitoring core would reject);
- many queues judged in one loop (a series) answer exactly as
  nagiosplugin's own Check answers the same metrics one by one.

Pure functions get many examples; executables run as processes get few
(each costs a process start), with several inputs packed into one run where
the check takes them (several -q, several stdin lines).
"""

import argparse
import json
import math
import os
import re
import subprocess
import tempfile

import nagiosplugin
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from celery_checks.pulsefile import check as pulsefile
from celery_checks.workers import inventory, stdin
from celery_checks.plugin import perfdata, secrets, thresholds
from celery_checks.plugin.policy import CheckError
from tests.kit import project
from tests.kit.faults import closed_port
from tests.kit.plugin import PERF_ITEM, executable, parse_perfdata, render, run_check
from tests.kit.producers import declare_on_redis
from tests.kit.project import MINIMAL_ARGS

CHECKS = project.checks()

PURE = settings(max_examples=300, deadline=None)
PROCESS = settings(max_examples=20, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])

# Characters operators really put in names, and those that break parsers.
NASTY = " '\"=|;,:@*?[]{}\\/#%$&!~`-_.\t\u00e9\u00fc\u00df\u4e2d\u0416\U0001f600\u200b"
names = st.text(alphabet=st.sampled_from(NASTY) | st.characters(
    blacklist_categories=("Cs", "Cc")), min_size=1, max_size=24)
# -q names are stripped (a stray space typed in a service definition must
# not name another queue), so a generated queue name has none around it.
queue_names = names.filter(lambda n: "\x00" not in n and n.strip() == n)
range_parts = st.sampled_from(["", "~", "@", ":", "-", ".", "10", "0", "5.5", "-3", "1e3",
                               "inf", "nan", " ", "abc", "20", "::", "@~:", "0x10"])
threshold_text = st.lists(range_parts, max_size=5).map("".join) | st.text(max_size=12)


def assert_plugin_answer(result, name):
    """The contract of every answer, whatever the input."""
    output = result.stdout + result.stderr
    assert result.rc in (0, 1, 2, 3), result.describe("exit code")
    assert "Traceback" not in output, result.describe("traceback")
    if "usage:" in output:
        assert result.rc == 3, result.describe("a usage error is UNKNOWN, not %s" % result.rc)
    prefix = name.upper().replace("CHECK_", "", 1)
    state = ("OK", "WARNING", "CRITICAL", "UNKNOWN")[result.rc]
    assert result.first_line.startswith("%s %s - " % (prefix, state)), result.describe("status line")
    assert result.summary.strip(), result.describe("empty status text")
    # The first "|" ends the text: any "|" inside it would have made the
    # rest fail the perfdata grammar in run_check already.
    assert len(result.stdout.splitlines()[0].split("|")) <= 2, result.describe("| in the text")


# ------------------------------------------------------------ pure functions

@PURE
@given(threshold_text)
@example("10:5")
@example("@")
@example("~:")
@example(".1e30")
@example("123456789012345678901234.5")
def test_threshold_range_accepts_or_rejects_cleanly(spec):
    try:
        text = thresholds.threshold_range(spec)
    except argparse.ArgumentTypeError:
        return
    limit = nagiosplugin.Range(text)  # what evaluation will build from it
    assert re.fullmatch(r"@?(?:~|-?[\d.]+)?:?(?:-?[\d.]+)?", str(limit)), (spec, str(limit))
    # perfdata carries it as warn/crit: the grammar must take it
    line = str(nagiosplugin.Performance("x", 1, "", limit, limit, 0, ""))
    assert PERF_ITEM.match(line), line


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)


@PURE
@given(names, finite | st.integers(-10**12, 10**12) | st.booleans())
def test_any_label_and_value_make_parsable_perfdata(name, value):
    label = perfdata.label(name)
    assert label and not re.search(r"['=|\x00-\x1f\x7f]", label)
    assert perfdata.label(label) == label  # stable: graphs keep their name
    number = perfdata.number(value)
    assert "e" not in str(number).lower()
    line = str(nagiosplugin.Performance(label, number, "s", "10", "~:20", 0, ""))
    parsed = parse_perfdata(line)
    assert list(parsed) == [label.strip()] or list(parsed) == [label], (line, parsed)
    assert math.isclose(float(parsed[list(parsed)[0]].value), round(float(value), 3), abs_tol=1e-3)


@PURE
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="@:/"),
               min_size=6, max_size=20),
       st.sampled_from(["redis://u:{pw}@host:6380/0", "amqp://guest:{pw}@rabbit:5672/vh",
                        "rediss://:{pw}@h/1?ssl_cert_reqs=none", "sentinel://:{pw}@h:26381"]))
def test_a_password_is_masked_wherever_it_appears(password, template):
    from urllib.parse import quote

    # A password that is a piece of the rest of the URL (the scheme
    # "rediss", "?ssl_c") shows there however well it is masked: such a
    # draw tests nothing. (It cannot straddle the mask: ":" and "@" around
    # it are never drawn.)
    rest = secrets.redact_url(template.format(pw="pw"))
    assume(password.strip() and password not in rest and quote(password, safe="") not in rest)
    url = template.format(pw=quote(password, safe=""))
    shown = secrets.redact_url(url)
    assert password not in shown and quote(password, safe="") not in shown
    # and anywhere later a URL is quoted (an exception message, a traceback
    # line): the URL masked, the words around it left as they are
    assert secrets.redact("auth failed (%s)" % url) == "auth failed (%s)" % shown


def answer_of_nagiosplugins_own_check(check, verbose):
    """What ``check`` would print through nagiosplugin's own Check: its
    Series (many items judged alike in one loop, one OK Result for those in
    range) taken apart into plain Metrics, each through the context's
    evaluate() and performance()."""
    from celery_checks.plugin.resource import Series

    resource = check.resources[0]
    probe = resource.probe

    def one_metric_each():
        metrics = []
        for metric in probe():
            if isinstance(metric, Series):
                metrics += [nagiosplugin.Metric(name, value, metric.uom, metric.min, metric.max,
                                                metric.context)
                            for name, value, _item in metric.entries]
            else:
                metrics.append(metric)
        return metrics

    resource.probe = one_metric_each
    own = nagiosplugin.Check(resource, *check.contexts.by_name.values(), check.summary)
    own.name = check.name
    return render(own, verbose)


heartbeat_record = st.fixed_dictionaries({}, optional={
    "started": st.floats(0, 2000), "pending_since": st.floats(0, 2000),
    "latency": st.floats(0, 400), "failed": st.floats(0, 2000),
    "failure": st.sampled_from(["ConnectionError", "x" * 120])})
heartbeat_ranges = st.sampled_from([[], ["-w", "300", "-c", "600"], ["-w", "@0:100", "-c", "~:1500"],
                                    ["--latency-warning", "0", "--latency-critical", "10:"]])


@PURE
@given(st.dictionaries(st.sampled_from(["celery", "a=b", "a_b", "mail", "x" * 30, "x" * 31]),
                       heartbeat_record, min_size=1, max_size=6),
       heartbeat_ranges, st.integers(0, 2))
def test_heartbeat_series_answer_as_nagiosplugins_own_check(records, ranges, verbose):
    from celery_checks.heartbeat import check as heartbeat
    from celery_checks.plugin.runner import Deadline

    now = 1_800_000_000.0
    settings = heartbeat.parse_args(["--store", "redis://127.0.0.1:1/0"] + ["-v"] * verbose
                                    + [a for q in records for a in ("-q", q)] + ranges)

    def check():
        facts = [heartbeat.QueueHeartbeat(q, {k: now - v if k in ("started", "pending_since",
                                                                   "failed") else v
                                              for k, v in record.items()}, now)
                 for q, record in records.items()]
        return heartbeat.make_check(settings, Deadline(10), facts)

    ours, own = render(check(), verbose), answer_of_nagiosplugins_own_check(check(), verbose)
    assert (ours.rc, ours.stdout) == (own.rc, own.stdout)


@PURE
@given(st.lists(st.tuples(st.sampled_from(["celery", "a=b", "a_b", "mail", "q" * 30, "q" * 31]),
                          st.integers(0, 10**6) | st.none()), min_size=1, max_size=6,
                unique_by=lambda depth: depth[0]),
       st.sampled_from([[], ["-w", "100", "-c", "1000"], ["-w", "@10:20", "-c", "~:5"],
                        ["-c", "0"]]),
       st.integers(0, 2))
def test_queue_series_answer_as_nagiosplugins_own_check(depths, ranges, verbose):
    from celery_checks.connect.layout import RedisLayout
    from celery_checks.plugin.runner import Deadline
    from celery_checks.queue import check as queue
    from celery_checks.queue.facts import Depth, Findings
    from celery_checks.queue.redis import Absence

    settings = queue.parse_args(["-b", "redis://127.0.0.1:1/0"] + ["-v"] * verbose
                                + [a for name, _ in depths for a in ("-q", name)] + ranges)

    def check():
        findings = Findings(0, [], unacked=0)
        for name, waiting in depths:  # None: nobody declared it
            depth = Depth(name, waiting or 0, [(0, waiting or 0)], declared=waiting is not None)
            if waiting is None:
                depth.absence = Absence(name, RedisLayout({}), 0)
            findings.depths.append(depth)
        return queue.make_check(settings, Deadline(10), findings)

    ours, own = render(check(), verbose), answer_of_nagiosplugins_own_check(check(), verbose)
    assert (ours.rc, ours.stdout) == (own.rc, own.stdout)


status_line = st.one_of(
    st.builds("->  {}: {}".format, names, st.sampled_from(["OK", "pong", "ERROR", "", "OK ok"])),
    st.builds("{}@{}: OK".format, names, names),
    st.builds("{} nodes online.".format, st.integers(-1, 5)),
    st.just("Error: No nodes replied within time constraint."),
    st.just("\x1b[1;32m->  a@b: OK\x1b[0m"),
    st.text(max_size=40),
)
status_text = st.lists(status_line, max_size=6).map("\n".join)
json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
).map(json.dumps)
ping_json = st.dictionaries(names, st.sampled_from([{"ok": "pong"}, {"error": "x|y"}, {"ok": 1}, []]),
                            max_size=4).map(json.dumps)


@PURE
@given(status_text | json_text | ping_json | json_text.map(lambda t: t[: len(t) // 2]))
def test_status_parser_returns_replies_or_a_clear_error(text):
    try:
        replies = stdin.parse_status(text)
    except CheckError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert all(isinstance(r.name, str) and r.name.strip() for r in replies)


@PURE
@given(st.text(max_size=30), st.lists(names, max_size=8))
@example("0=2", [])
@example("w*@vm=2", ["w1@vm"])
def test_inventory_patterns_parse_or_fail_cleanly_and_judge_consistently(spec, online):
    try:
        pattern, count = inventory.parse_expectation(spec)
    except ValueError:
        return
    assert pattern and count >= 1
    try:
        expected = inventory.Inventory([(pattern, count)])
    except ValueError as exc:  # a name without a glob is one node: COUNT 1 only
        assert count > 1 and not inventory.has_glob(pattern) and "COUNT must be 1" in str(exc)
        return
    verdict = expected.judge(online)
    assert verdict.expected == count
    assert 0 <= verdict.missing <= count
    assert verdict.unexpected >= 0


pulse_bytes = st.one_of(
    st.binary(max_size=300),
    json_text.map(str.encode),
    json_text.map(lambda t: t[: max(1, len(t) // 2)].encode()),
    st.builds(lambda node, state: json.dumps({"node": node, "pid": 1, "state": state}).encode(),
              names, st.sampled_from(["running", "stopped", "STOPPED", "", "x|y"]) | names),
    st.integers(4000, 20000).map(lambda n: b"{" + b" " * n + b"}"),
)


@PURE
@given(pulse_bytes)
def test_pulse_content_reader_never_raises(raw):
    with tempfile.NamedTemporaryFile(suffix=".pulse") as handle:
        handle.write(raw)
        handle.flush()
        content, note = pulsefile.read_content(handle.name)
    assert isinstance(content, dict) and (note is None or isinstance(note, str))


# ------------------------------------------------- executables as processes

# Arguments that make each check judge something without a broker round
# trip that could dominate the run (a refused port answers at once).
OFFLINE = {
    "check_celery_pulsefile": (["-f", "{pulse}"], None),
    "check_celery_workers": (["--source", "stdin"], "->  a@h: OK\n->  b@h: OK\n\n2 nodes online.\n"),
    "check_celery_heartbeat": (["--store", "redis://127.0.0.1:{closed}/0"], None),
    "check_celery_tasks": (["--store", "redis://127.0.0.1:{closed}/0"], None),
    "check_celery_queue": (["-b", "redis://127.0.0.1:{closed}/0"], None),
}


@pytest.mark.parametrize("name", CHECKS)
@settings(PROCESS, max_examples=12)
@given(warning=threshold_text, critical=threshold_text)
@example(warning="10:5", critical="1")
@example(warning="", critical="@")
@example(warning="~:0", critical="@1:3")
def test_thresholds_from_the_command_line(name, warning, critical):
    assume("\x00" not in warning + critical)  # no argv can carry one
    args, stdin = OFFLINE.get(name, (MINIMAL_ARGS.get(name, []), None))
    with tempfile.NamedTemporaryFile(suffix=".pulse") as handle:
        args = [a.format(pulse=handle.name, closed=closed_port()) for a in args]
        result = run_check(name, *args, "--warning=" + warning, "--critical=" + critical,
                           stdin=stdin)
    assert_plugin_answer(result, name)
    if result.rc == 3:
        assert "range" in result.first_line, result.describe("why unknown")


@PROCESS
@given(st.lists(pulse_bytes, min_size=1, max_size=4))
@example([b"\x00\xff" * 3000, b'{"node": "a|b", "state": "stop', b"{}" * 5000])
def test_pulsefile_contents_binary_huge_truncated(contents):
    with tempfile.TemporaryDirectory() as directory:
        for index, raw in enumerate(contents):
            with open(os.path.join(directory, "w%d.pulse" % index), "wb") as handle:
                handle.write(raw)
        result = run_check("check_celery_pulsefile", "-f", os.path.join(directory, "*.pulse"), "-vv")
    assert_plugin_answer(result, "check_celery_pulsefile")
    assert result.rc in (0, 2), result.describe("fresh files: OK, or CRITICAL when marked stopped")
    assert len(result.perfdata) == len(contents)


@PROCESS
@given(status_text | ping_json | json_text, st.lists(st.text(max_size=20), max_size=3),
       st.none() | st.lists(st.text(max_size=20) | names.map("{}=2".format), max_size=4))
@example("->  a|b@h'q=: OK\n1 node online.", ["a|b@h'q="], None)
@example("->  a@h: OK\n", [], ["# comment", "a@* = 1", "b@h=x"])
def test_workers_stdin_and_inventory(text, patterns, expect_file):
    args = ["--source", "stdin"] + ["--expect=" + p for p in patterns if "\x00" not in p]
    with tempfile.NamedTemporaryFile("w", suffix=".expect", encoding="utf-8",
                                     errors="surrogateescape") as handle:
        if expect_file is not None:
            handle.write("\n".join(expect_file))
            handle.flush()
            args += ["--expect-file", handle.name]
        result = run_check("check_celery_workers", *args, stdin=text.replace("\x00", ""))
    assert_plugin_answer(result, "check_celery_workers")


@PROCESS
@given(st.lists(queue_names, min_size=1, max_size=4,
                unique=True),
       st.integers(0, 3))
@example(["with space", "it's", "a=b", "x|y"], 2)
@example(["a=b", "a_b", "unacked", "a'b"], 1)
@example(["caf\u00e9 \u4e2d", "-q", "\"quoted\""], 1)
def test_queue_names_with_any_character(redis_url, redis_client, queues, waiting):
    redis_client.flushdb()
    for queue in queues:
        raw = queue.encode("utf-8", "surrogatepass")
        # declared as a worker consuming it leaves it (kombu's binding)
        redis_client.sadd(b"_kombu.binding." + raw, raw + b"\x06\x16\x06\x16" + raw)
        for _ in range(waiting):
            redis_client.lpush(raw, b"{}")
    result = run_check("check_celery_queue", "-b", redis_url, "-t", "3",
                       *["--queue=" + q for q in queues])
    assert_plugin_answer(result, "check_celery_queue")
    if result.rc == 3:  # a name the check refuses: it must say which rule
        return
    assert result.rc == 0, result.describe("no thresholds: OK")
    # one item per queue, even where two names sanitise to one label
    counts = {label: perf.value for label, perf in result.perfdata.items() if label != "unacked"}
    assert len(counts) == len(queues), result.describe("one perfdata item per queue")
    assert all(value == waiting for value in counts.values()), result.describe("counts")


@settings(PROCESS, max_examples=10)
@given(st.lists(queue_names, min_size=1, max_size=3,
                unique=True), st.booleans())
@example(["a=b", "a_b", "a"], True)
@example(["|0"], True)
def test_heartbeat_queue_names_with_any_character(redis_url, redis_client, queues, published):
    redis_client.flushdb()
    flags = ["--queue=" + q for q in queues]
    if published:  # the trigger writes the records the check reads
        for queue in queues:  # as a worker consuming it leaves it (kombu's binding)
            declare_on_redis(redis_client, queue)
        # The trigger is no plugin: its line names the queues as they are
        # ("published 1 heartbeat ... to |0"), not to be read as perfdata.
        # A name it refuses is judged by the check below (both refuse it).
        subprocess.run([executable("trigger_celery_heartbeat"), "-b", redis_url] + flags,
                       capture_output=True, timeout=60)
    result = run_check("check_celery_heartbeat", "--store", redis_url, "-t", "3", *flags)
    assert_plugin_answer(result, "check_celery_heartbeat")
    if result.rc == 3:  # a name both refuse: usage, not an outage
        return
    if published:
        assert result.rc == 0, result.describe("just published, no thresholds crossed")
        ages = [label for label in result.perfdata if label.endswith("age")]
        assert len(ages) == len(queues), result.describe("one age per queue")
    else:
        assert result.rc == 2, result.describe("never seen: CRITICAL")


OPTIONS = {
    "check_celery_queue": [["--all-queues"], ["--unacked-per-queue"], ["-q", "a"], ["-q", ""],
                           ["--consumers-critical", "1:"], ["-O", "sep=|"], ["-O", "priority_steps=[0,3]"],
                           ["-O", "global_keyprefix=p:"], ["-O", "x"], ["-w", "5"], ["-c", "0"]],
    "check_celery_heartbeat": [["-q", "a"], ["--latency-warning", "1"], ["--missing-state", "ok"],
                               ["--missing-state", "bogus"], ["-w", "~:"], ["-c", "1:0"],
                               ["-O", "global_keyprefix=p:"]],
    "check_celery_workers": [["--expect", "a@b=2"], ["--expect", "=3"], ["--expect", "*@*=0"],
                             ["--source", "events"], ["--window", "0.3"], ["--reply-timeout", "0.3"],
                             ["--reply-timeout", "-1"], ["--missing-state", "warning"], ["-c", "1:"],
                             ["--versions-differ-state", "x"], ["--expect-file", "/nonexistent"]],
    "check_celery_pulsefile": [["--min-files", "0"], ["--min-files", "-1"], ["--clock-tolerance", "x"],
                               ["-f", "/nonexistent/*.pulse"], ["-f", "/tmp"], ["-w", "1:"]],
}


@PROCESS
@given(st.sampled_from(sorted(OPTIONS)).flatmap(
    lambda name: st.tuples(st.just(name), st.lists(st.sampled_from(OPTIONS[name]), max_size=4))),
    st.sampled_from([[], ["-v"], ["-vvv"], ["-t", "1"]]))
def test_option_combinations(redis_url, choice, common):
    name, picked = choice
    args = [a for option in picked for a in option] + common
    if name == "check_celery_pulsefile":
        args = ["-f", "/nonexistent/x.pulse"] + args
    elif name == "check_celery_heartbeat":
        args = ["--store", redis_url] + args
    else:
        args = ["-b", redis_url] + args
    result = run_check(name, *args, timeout=30)
    if "-vvv" in args:  # -vvv may print a traceback after the status line
        assert result.rc in (0, 1, 2, 3) and result.first_line, result.describe("answer")
        return
    assert_plugin_answer(result, name)

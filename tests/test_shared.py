"""The shared layer: pure logic as unit tests, the runner as processes."""

import argparse
import subprocess
import sys
import textwrap

import pytest

from celery_checks.plugin import cli, perfdata, repeats, secrets, thresholds
from celery_checks.connect.targets import resolve_broker_url
from celery_checks.connect.urls import transport_of
from celery_checks.plugin.policy import CheckError
from tests.kit.project import ROOT
from tests.kit.plugin import Result, parse_perfdata

pytestmark = pytest.mark.quick


@pytest.mark.parametrize("spec", ["10", "10:", "~:10", "10:20", "@10:20", "0.5", " 5 ", "@~:0"])
def test_threshold_range_accepts(spec):
    assert thresholds.threshold_range(spec) == spec.strip()


@pytest.mark.parametrize("spec", ["", " ", "abc", "10:5", "1e3", "5::", "~", "@", "-5", "inf", "1,5"])
def test_threshold_range_rejects(spec):
    with pytest.raises(argparse.ArgumentTypeError):
        thresholds.threshold_range(spec)


@pytest.mark.parametrize("value,expected", [
    (3, 3), (True, 1), (False, 0), (1e-05, 0), (2.0, 2), (0.1234, "0.123"), (12.5, "12.5"),
    (1e16 + 0.5, 10000000000000000),
])
def test_number_never_prints_exponent(value, expected):
    assert perfdata.number(value) == expected
    assert "e" not in str(perfdata.number(value))


@pytest.mark.parametrize("name,expected", [
    ("celery", "celery"), ("a=b", "a_b"), ("it's", "it_s"), ("x|y", "x_y"), ("line\nbreak", "line_break"),
    ("with space", "with space"), ("", "_"), ("naïve", "naïve"),
])
def test_label_replaces_only_forbidden_characters(name, expected):
    assert perfdata.label(name) == expected


@pytest.mark.parametrize("spec,words", [
    ("300", "> 300s"), ("~:300", "> 300s"), ("10:", "< 10s"), ("10:20", "outside 10:20"),
    ("@10:20", "inside 10:20"),
])
def test_violation_in_words(spec, words):
    assert perfdata.violation(spec, "s") == words


@pytest.mark.parametrize("url,shown", [
    ("redis://:s3cret@host:6380/0", "redis://:***@host:6380/0"),
    ("amqp://user:p%40ss@host//", "amqp://user:***@host//"),
    ("redis://host/0", "redis://host/0"),
    ("sentinel://host:26381?password=zz9zz", "sentinel://host:26381?password=***"),
])
def test_redact_url(url, shown):
    assert secrets.redact_url(url) == shown


def test_redaction_looks_for_every_password_key():
    # redact() scans for password-like query keys only where a stem is seen
    assert all(any(stem in key for stem in secrets._KEY_STEMS) for key in secrets.PASSWORD_KEYS)
    for key in secrets.PASSWORD_KEYS:
        text = "x=1 'q'=3;;;0 redis://h/0?%s=hunter22&db=1" % key.upper()
        assert "hunter22" not in secrets.redact(text), key


def test_redaction_masks_urls_in_any_text_and_leaves_ordinary_words():
    text = "queue celery: cannot reach amqp://celery:celery@h//, celery=0"
    assert secrets.redact(text) == "queue celery: cannot reach amqp://celery:***@h//, celery=0"
    assert secrets.redact("wrong user or password") == "wrong user or password"
    assert secrets.redact_url("redis://:p@ss/w@h/0") == "redis://:***@h/0"


def test_broker_precedence(tmp_path):
    file = tmp_path / "url"
    file.write_text("amqp://u:p@from-file//\nignored\n")
    env = {"CELERY_BROKER_URL": "redis://from-env/1"}
    assert resolve_broker_url("redis://from-arg/2", str(file), env) == "redis://from-arg/2"
    assert resolve_broker_url(None, str(file), env) == "amqp://u:p@from-file//"
    assert resolve_broker_url(None, None, env) == "redis://from-env/1"
    assert resolve_broker_url(None, None, {}) == "redis://localhost:6379/0"


@pytest.mark.parametrize("content", [None, "", "\n"])
def test_broker_file_unreadable_or_empty(tmp_path, content):
    file = tmp_path / "url"
    if content is not None:
        file.write_text(content)
    with pytest.raises(CheckError):
        resolve_broker_url(None, str(file), {})


def test_unsupported_scheme_is_refused_without_leaking():
    with pytest.raises(CheckError) as info:
        resolve_broker_url("sqs://key:verysecret@x", None, {})
    assert "verysecret" not in str(info.value)
    assert transport_of("pyamqp://h//") == "amqp" and transport_of("rediss://h/0") == "redis"


@pytest.mark.parametrize("spec,expected", [
    ("global_keyprefix=myapp:", ("global_keyprefix", "myapp:")),
    ("priority_steps=[0,5,9]", ("priority_steps", [0, 5, 9])),
    ("sep=\x06\x16", ("sep", "\x06\x16")),
    ("visibility_timeout=3600", ("visibility_timeout", 3600)),
])
def test_transport_option(spec, expected):
    assert cli.transport_option(spec) == expected


@pytest.mark.parametrize("spec", ["noequals", "=value"])
def test_transport_option_rejects(spec):
    with pytest.raises(argparse.ArgumentTypeError):
        cli.transport_option(spec)


# ------------------------------------------------- the runner, as processes

TOY_CHECK = textwrap.dedent('''
    import sys, time
    import nagiosplugin
    from celery_checks.plugin import cli, runner, secrets
    from celery_checks.plugin.policy import Unreachable, CheckError

    class Toy(nagiosplugin.Resource):
        def probe(self):
            mode = sys.argv[1]
            if mode == "hang":
                time.sleep(30)
            if mode == "unreachable":
                # a library's text quoting the URL: masked by structure
                raise Unreachable("cannot reach broker redis://:hunter22@h/0: refused")
            if mode == "unknown":
                raise CheckError("cannot read input")
            if mode == "bug":
                raise KeyError("redis://u:hunter22@h/0")
            yield nagiosplugin.Metric("value", 1, context="value")

    parser = cli.make_parser("check_toy", "toy", check="x", perfdata="x", states="OK x")
    parser.add_argument("mode")
    args = parser.parse_args(sys.argv[1:])
    check = nagiosplugin.Check(Toy(), nagiosplugin.ScalarContext("value"))
    check.name = "toy"
    runner.run(check, args.verbose, runner.Deadline(args.timeout))
''')


def run_toy(*args):
    proc = subprocess.run([sys.executable, "-c", TOY_CHECK] + list(args), capture_output=True,
                          text=True, cwd=str(ROOT), timeout=60)
    return Result(["toy"] + list(args), proc.returncode, proc.stdout, proc.stderr, 0)


def test_own_timeout_is_unknown_within_t():
    result = run_toy("hang", "-t", "1")
    result.assert_unknown("timed out after 1s")


def test_unreachable_is_critical_and_redacted():
    result = run_toy("unreachable")
    result.assert_critical("cannot reach broker redis://:***@h/0: refused")
    assert "hunter22" not in result.stdout


def test_check_error_is_unknown():
    run_toy("unknown").assert_unknown("cannot read input")


def test_internal_error_is_unknown_traceback_only_at_vvv():
    result = run_toy("bug", "-vv")
    result.assert_unknown("internal error: KeyError")
    assert "Traceback" not in result.stdout and "hunter22" not in result.stdout
    result = run_toy("bug", "-vvv")
    assert result.rc == 3 and "Traceback" in result.stdout and "hunter22" not in result.stdout


BEGUN_CHECK = textwrap.dedent('''
    import sys, time
    import nagiosplugin
    from celery_checks.plugin import cli, runner
    from celery_checks.plugin.policy import Unreachable

    class Sent:  # what a start() leaves open, e.g. the ping's reply queue
        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            sys.stderr.write("closed\\n")

    def start(args, deadline):
        if args.mode == "hang":  # a name that takes forever to resolve, say
            time.sleep(30)
        if args.mode == "unreachable":
            raise Unreachable("cannot reach broker redis://:hunter22@h/0: refused")
        return Sent()

    class Toy(nagiosplugin.Resource):
        def __init__(self, begun, take):
            self.begun, self.take = begun, take

        def probe(self):
            if self.take:
                with self.begun.result():
                    pass
            yield nagiosplugin.Metric("value", 1, context="value")

    def parse_args(argv):
        parser = cli.make_parser("check_toy", "toy", check="x", perfdata="x", states="OK x")
        parser.add_argument("mode")
        return parser.parse_args(argv)

    def make_check(args, deadline, begun):
        check = nagiosplugin.Check(Toy(begun, args.mode != "untaken"),
                                   nagiosplugin.ScalarContext("value"))
        check.name = "toy"
        return check

    runner.entry_point("TOY", parse_args, make_check, start=start)()
''')


def run_begun(*args):
    # a start() that hangs past -t would run into this timeout and fail
    proc = subprocess.run([sys.executable, "-c", BEGUN_CHECK] + list(args), capture_output=True,
                          text=True, cwd=str(ROOT), timeout=15)
    return Result(["toy"] + list(args), proc.returncode, proc.stdout, proc.stderr, 0)


def test_work_begun_before_the_check_is_closed_once_taken_or_not():
    """runner.begin: what a check starts before its imports (the workers'
    ping) is closed once by the check that takes it, or by end() if none does."""
    for mode in ("ok", "untaken"):
        result = run_begun(mode)
        result.assert_ok()
        assert result.stderr.count("closed") == 1, (mode, result.stderr)


def test_work_begun_keeps_the_status_policy_and_the_deadline():
    result = run_begun("unreachable")
    result.assert_critical("cannot reach broker redis://:***@h/0: refused")
    assert "hunter22" not in result.stdout
    run_begun("hang", "-t", "1").assert_unknown("timed out after 1s")


def test_perfdata_grammar_of_the_tests_rejects_bad_items():
    assert parse_perfdata("'a b'=1s;2;3;0; x=0.5")["a b"].value == 1
    for bad in ["a=1e-05", "a=True", "a'b=1", "a=1;;;;;", "=1"]:
        with pytest.raises(AssertionError):
            parse_perfdata(bad)


def test_password_only_url_means_the_default_user_on_every_redis_py(redis_server, redis_db):
    """A URL with a password but no user authenticates Redis's default user
    (AUTH default PW, as redis-py 6+ and kombu's compat shim for redis-py 4
    do), so a server without a password accepts it, whatever the library
    set; the checks' own client sends it so."""
    from celery_checks.connect.redis import redis_client

    client = redis_client(redis_server.url(redis_db, auth=":any-pw"), timeout=2)
    try:
        assert client.call("PING") == b"PONG"
    finally:
        client.close()


def test_kombu_redis_connection_failure_keeps_its_reason(monkeypatch):
    """kombu 5.2's async Redis connection took disconnect(self) while
    redis-py 4.3 calls disconnect(error): a failed connect became a
    TypeError. With the compat shim the real error comes through."""
    import socket

    import kombu
    import redis
    from kombu.transport import redis as transport

    from celery_checks.connect.kombu import kombu_redis_compat

    # the shim patches kombu for this process: undone after the test, so
    # tests/test_urls.py compares with kombu's own reading
    monkeypatch.setattr(transport.Channel, "_connparams", transport.Channel._connparams)
    kombu_redis_compat()
    kombu_redis_compat()  # idempotent
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts, never answers: the TLS handshake times out
    url = "rediss://127.0.0.1:%d/0?ssl_cert_reqs=none" % listener.getsockname()[1]
    connection = kombu.Connection(url, transport_options={
        "socket_timeout": 0.3, "socket_connect_timeout": 0.3, "max_retries": 0})
    try:
        with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)):
            connection.ensure_connection(max_retries=0, reraise_as_library_errors=False)
            connection.default_channel.client.ping()
    finally:
        connection.release()
        listener.close()


def test_word_labels_are_those_nagiosplugin_leaves_unquoted():
    """perfdata.word() (no regex) agrees with nagiosplugin's ``^\\w+$`` on
    every character of the BMP, and on whole labels."""
    import re

    for code in range(0x10000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF or char == "\n":  # surrogates; "$" before a newline
            continue
        assert perfdata.word(char) == bool(re.match(r"^\w+$", char)), hex(code)
    for text in ("celery", "bench-q0001_age", "a_b", "_", "__", "", "rtt_w1@host", "ünï_çødé"):
        assert perfdata.word(text) == bool(re.match(r"^\w+$", text)), text


def test_unique_label_suffixes_names_that_sanitise_alike():
    used = {"unacked"}
    assert [perfdata.unique_label(n, used) for n in ("a=b", "a_b", "a'b", "unacked")] == \
        ["a_b", "a_b_2", "a_b_3", "unacked_2"]


def test_unique_label_keeps_labels_apart_in_their_first_19_characters():
    used = set()
    names = ("consumers_notifications-email", "consumers_notifications-sms",
             "consumers_notific_2", "oldest_notifications-email", "short")
    # a name equal to a suffixed one made before moves on to the next suffix
    assert [perfdata.unique_label(n, used, perfdata.SIGNIFICANT) for n in names] == [
        "consumers_notifications-email", "consumers_notific_2", "consumers_notific_3",
        "oldest_notifications-email", "short"]
    starts = [label[:19] for label in used if not label.startswith("\x00")]
    assert len(starts) == len(set(starts)) == 5
    # Without it (the checks that do not opt in), only whole labels are kept apart.
    assert perfdata.unique_label("consumers_notifications-sms", {"consumers_notifications-x"}) \
        == "consumers_notifications-sms"


@pytest.mark.parametrize("significant", [None, perfdata.SIGNIFICANT])
def test_labels_remember_suffixes_and_give_the_same_labels(significant):
    """Labels (what checks use) remembers the next suffix per name, so 1,000
    names alike in 19 characters are not quadratic; the labels are those a
    plain set gives, also where a name equals a suffix made before."""
    names = ["notifications-queue-%04d" % i for i in range(300)] + [
        "a=b", "a_b", "a_b_2", "notifications-qu_2", "notifications-q_12", "x" * 40, "x" * 40]
    names += names[:50]
    plain, memo = set(), perfdata.Labels()
    expected = [perfdata.unique_label(n, plain, significant) for n in names]
    assert [perfdata.unique_label(n, memo, significant) for n in names] == expected
    assert len(set(expected)) == len(expected)


# The repeated -q/--expect read in one pass (plugin/repeats.py): the same
# namespace as argparse alone gives, errors included, for every form.
REPEATED_FORMS = [
    ["-q", "a", "-q", "b", "-q", "a"],
    ["-qa", "--queue", "b", "--queue=c", "-v", "-q", "d"],
    ["-q", "a", "-vqx"],                      # combined short flags: argparse's
    ["--que", "x", "-q", "y"],                # an abbreviation: argparse's
    ["-q", "a", "--queue="],                  # empty: the finisher's usage error
    ["-q"], ["-q", "-v"], ["-q", "a", "--"], ["--", "-q", "a"],
    ["-q", "a", "--all-queues", "-q", "b"],   # the mutually exclusive group still judged
    ["-q", "a", "-q", "", "-q", "b"],         # a value its type refuses
    ["-b", "redis://h/0", "-w", "5"] + [a for i in range(50) for a in ("-q", "q%d" % i)],
]


@pytest.mark.parametrize("module", ["queue", "heartbeat", "workers"])
@pytest.mark.parametrize("argv", REPEATED_FORMS, ids=lambda a: " ".join(a)[:40])
def test_repeated_options_read_as_argparse_reads_them(monkeypatch, capsys, module, argv):
    import importlib

    parse_args = importlib.import_module(
        "celery_checks.%s.options" % module).parse_args
    if module == "workers":  # its repeated option is --expect
        argv = [{"-q": "--expect", "--queue": "--expect", "--que": "--exp"}.get(a, a)
                .replace("--queue=", "--expect=") for a in argv]

    def plain(value):  # objects without __eq__ (Target, RedisLayout) by their fields
        if hasattr(value, "__dict__"):
            return type(value).__name__, {k: plain(v) for k, v in vars(value).items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    def outcome():
        try:
            return plain(parse_args(list(argv)))
        except SystemExit as exc:
            return exc.code, capsys.readouterr().out

    ours = outcome()
    monkeypatch.setattr(repeats, "gather_repeated", lambda actions, args: (args, {}))
    assert ours == outcome()

"""A hypothesis fuzzer of the legacy HTTP API, shared by the local and the Slurm tests.

Every endpoint, every form field, with values an attacker (or a confused
upstream) sends: huge and negative integers, digits other than ASCII, trailing
newlines, long strings, wrong JSON types, templates with format specs and stray
braces, bodies that are not forms or not JSON.  Every answer must hold:

* no 5xx (the fuzzed jobs do not exist or are not the fuzzer's to finish, so a
  5xx can only be a bug), except ``/gc``'s documented ``500 {"status": "BAD"}``;
* JSON, unless the API documents text for that answer (``/nodes``, ``tail``,
  ``pvcls``, the empty ``/request`` methods);
* no state change after a 4xx (the queued and running lists are the same
  before and after);
* no answer more than :data:`FACTOR` times larger than its request (above a
  small floor that covers the listings).

Deterministic (``derandomize``) and bounded (``max_examples``), for CI.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import legacy_template

#: an answer may be this many times larger than its request...
FACTOR = 4
#: ...once above this many bytes (a listing of jobs, an fscript's parameter block, /metrics)
FLOOR = 64 * 1024
#: answers documented as text (``/metrics``: Prometheus's text format)
TEXT_OK = {"/nodes", "tail", "pvcls", "empty", "/metrics"}
#: documented 5xx answers: /gc's BAD, /ready's "not ready"
FIVE_OK = {("/gc", 500), ("/ready", 503)}

GET_PATHS = ["/live", "/gc", "/nodes", "/running", "/queued", "/ready", "/metrics"]
JOB_PATHS = ["/runstatus", "/exitstatus", "/terminate", "/online", "/release", "/events"]
REQUEST_METHODS = ["ping", "connect", "shutdown", "abort", "info", "tail", "screenshot", "other"]

# -- values ---------------------------------------------------------------------
# A request is a valid one with one or two of its fields replaced by a hostile
# value (or removed): each hostile value then meets the check it must fail.
#: the classes of value that broke a check once: each is drawn often
KNOWN_BAD_VALUES: list[Any] = [
    "",
    " ",
    "²",
    "\u0662",
    "１",
    "1\n",
    "1\r",
    "nl-test\n",
    "a b",
    "a;reboot",
    "../..",
    "$(id)",
    "9999999999999999999",
    "18446744073709551616",
    "-1",
    "0x10",
    "1e3",
    "1_000",
    " 7 ",
    "\x00",
    "é",
    "{DOWNSTREAM_PARAMETERS:>99}",
    "\u2028",
    "true",
    "x" * 20_000,
    -1,
    0,
    2**31,
    2**32,
    2**63 - 1,
    2**63,
    2**64,
    10**30,
    -(2**63) - 1,
    None,
    True,
    False,
    1.5,
    1e300,
    [],
    {},
]
KNOWN_BAD = st.sampled_from(KNOWN_BAD_VALUES)
INTEGERS = st.one_of(KNOWN_BAD.filter(lambda v: isinstance(v, int)), st.integers(-(2**70), 2**70))
HOSTILE_TEXT = st.one_of(
    KNOWN_BAD.filter(lambda v: isinstance(v, str)),
    st.text(max_size=30),
    st.builds(lambda c, n: c * n, st.sampled_from("ax9é\n{"), st.integers(200, 30_000)),
)
HOSTILE = st.one_of(
    KNOWN_BAD,
    KNOWN_BAD,
    KNOWN_BAD,
    KNOWN_BAD.map(lambda v: [v]),
    HOSTILE_TEXT,
    INTEGERS,
    st.lists(HOSTILE_TEXT, max_size=3),
    st.dictionaries(HOSTILE_TEXT, INTEGERS, max_size=2),
)
NUMERIC_BAD = st.sampled_from(
    [
        "²",
        "\u0662",
        "１",
        "9999999999999999999",
        "18446744073709551616",
        "1\n",
        " 1",
        "-1",
        "0",
        "1e3",
        "0x10",
        "1_000",
        "",
        2**63,
        2**64,
        10**30,
        -1,
        0,
        1.5,
        True,
        None,
    ]
)
NAME_BAD = st.sampled_from(
    [
        "nl-test\n",
        "fuzz-job-0\n",
        "a b",
        "-a",
        ".",
        "a/b",
        "é",
        "x" * 200,
        "x" * 100_000,
        "a;id",
        "",
        7,
        None,
        ["fuzz-job-0"],
    ]
)
#: hostile values aimed at one field's checks
FIELD_BAD = {
    "number": NUMERIC_BAD,
    "nodes": NUMERIC_BAD,
    "jobid": st.one_of(NUMERIC_BAD, NAME_BAD),
    "lines": st.one_of(NUMERIC_BAD, NUMERIC_BAD.map(lambda v: [v])),
    "name": NAME_BAD,
    "path": st.sampled_from(["/../..", "../../etc", "/data/..", "a\n", "\x00", "/x" * 3000, ["/" + "y" * 5000]]),
}

TEMPLATE_KEYS = [
    "JOBOBJ_APPDEFVERSION",
    "JARVICE_CPU_CORES",
    "JOBOBJ_GPUS",
    "JOBOBJ_RAM",
    "JOBOBJ_WALLTIME",
    "JOBOBJ_ARCH",
    "JOBOBJ_LICENSES",
    "JOBOBJ_CTRSECRET",
    "JOBOBJ_DOCKER_SECRET",
    "JOBOBJ_INTERACTIVE",
    "JOBOBJ_NAE",
    "JOBOBJ_REPO",
    "JARVICE_CMD",
]
TEMPLATE_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "2",
            "²",
            "\u0662",
            "999999999",
            "9999999999999",
            "True",
            "[]",
            "é",
            "{",
            "}}",
            "{{}}",
            "x" * 5000,
            "$(id)",
            "e30=",
            "@@@",
            '{{"server": 1}}',
        ]
    ),
    st.text(max_size=20),
)
DEVICES = st.one_of(
    st.sampled_from(
        [
            "exclusive=False",
            "exclusive=maybe",
            "overlay=\u0662",
            "overlay=99999999",
            "overlay=5",
            "partition=a b",
            "partition=ok",
            "sbatch_x=\u00e9",
            "sbatch_qos=normal",
            "sbatch_=1",
            "bogus=1",
            "noequals",
            "sbatch_hold=maybe",
        ]
    ),
    st.text(max_size=12),
)
INSERT_VALUES = [
    "{DOWNSTREAM_PARAMETERS:>200000}",
    "{DOWNSTREAM_PARAMETERS}",
    "{DOWNSTREAM_PARAMETERS!r}",
    "{0}",
    "{}",
    "{",
    "}",
    "{{",
    "\x0cJOBOBJ_DOCKER_SECRET=x",
    "{DOWNSTREAM_PARAMETERS}\n" * 50,
    "\u2028JOBOBJ_APPDEFVERSION=1",
    "JOBOBJ_APPDEFVERSION=1",
    "é" * 1000,
]
INSERTS = st.sampled_from(INSERT_VALUES)


@st.composite
def templates(draw: st.DrawFn) -> str:
    """A valid held job's template with up to two keys, its devices or its text made hostile."""
    keys: dict[str, str] = {}
    devices = ["sbatch_hold=True"]  # a job the fuzzer manages to submit stays queued: the state holds still
    inserted = ""
    for change in draw(st.lists(st.sampled_from(["key", "device", "insert"]), max_size=2)):
        if change == "key":
            keys[draw(st.sampled_from(TEMPLATE_KEYS))] = draw(TEMPLATE_VALUES)
        elif change == "device":
            devices.append(draw(DEVICES))
        else:
            inserted += draw(INSERTS) + "\n"
    keys["JOBOBJ_DEVICES"] = json.dumps(devices)  # legacy_template doubles its braces, as the upstream does
    text = legacy_template("sleep 600", extra=keys)
    # raw text, braces as they are: after the field's line
    return text.replace("{DOWNSTREAM_PARAMETERS}\n", "{DOWNSTREAM_PARAMETERS}\n" + inserted, 1)


@st.composite
def hpc_scripts(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["template"] * 6 + ["not-base64", "non-ascii", "not-utf8", "other-key", "not-object"]))
    if kind == "template":
        return {"shell": base64.b64encode(draw(templates()).encode()).decode()}
    if kind == "not-base64":
        return {"shell": draw(HOSTILE_TEXT)}
    if kind == "non-ascii":
        return {"shell": base64.b64encode(draw(templates()).encode()).decode() + draw(st.sampled_from(["é", "²"]))}
    if kind == "not-utf8":
        return {"shell": base64.b64encode(b"\xff\xfe" + draw(st.binary(max_size=20))).decode()}
    if kind == "other-key":
        return {draw(HOSTILE_TEXT): "aGVsbG8="}
    return draw(HOSTILE)


def mutate(draw: st.DrawFn, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with one or two fields hostile or missing, or an unknown key added."""
    count = draw(st.sampled_from([0, 1, 1, 1, 2]))
    for key in draw(st.lists(st.sampled_from(sorted(args) + ["(extra)"]), min_size=count, max_size=count, unique=True)):
        mode = draw(st.sampled_from(["hostile", "hostile", "hostile", "missing"]))
        if key == "(extra)":
            args[draw(HOSTILE_TEXT)] = draw(HOSTILE)
        elif mode == "missing":
            del args[key]
        else:
            aimed = FIELD_BAD.get(key)
            args[key] = draw(st.one_of(aimed, aimed, aimed, HOSTILE) if aimed is not None else HOSTILE)
    return args


@st.composite
def job_args(draw: st.DrawFn, submit: bool, bearer: str) -> dict[str, Any]:
    """An ``args`` object for a job endpoint.  Submissions are named ``fuzz-sub-*`` and the
    other endpoints ask about ``fuzz-job-*``: no job they name is one the fuzzer submitted,
    so none of them may legitimately answer 5xx (``/exitstatus`` of a running job) or change it."""
    if submit:
        args = {
            "name": f"fuzz-sub-{draw(st.integers(0, 30))}",
            "number": draw(st.integers(0, 3)),
            "nodes": draw(st.integers(1, 2)),
            "hpc_script": draw(hpc_scripts()),
            "bearer": bearer,
        }
    else:
        args = {
            "name": f"fuzz-job-{draw(st.integers(0, 3))}",
            "number": draw(st.integers(0, 3)),
            "jobid": str(draw(st.sampled_from([1, 2, 3, 10**6]))),
            "force": draw(st.booleans()),
        }
    return mutate(draw, args)


@st.composite
def bodies(draw: st.DrawFn, args: st.SearchStrategy[Any]) -> bytes:
    """A form body around ``args``, or one that is not a form of a JSON object."""
    kind = draw(st.sampled_from(["form"] * 8 + ["nothing", "not-json", "list", "raw", "two-args"]))
    if kind == "form":
        return urllib.parse.urlencode({"args": json.dumps(draw(args))}).encode()
    if kind == "nothing":
        return b""
    if kind == "not-json":
        return urllib.parse.urlencode({"args": draw(HOSTILE_TEXT)}).encode()
    if kind == "list":
        return urllib.parse.urlencode({"args": json.dumps([draw(HOSTILE)])}).encode()
    if kind == "two-args":
        return b"args=%7B%7D&args=" + urllib.parse.quote(json.dumps(draw(args))).encode()
    return draw(st.binary(max_size=200))


@st.composite
def request_paths(draw: st.DrawFn) -> tuple[str, str]:
    """(path, kind) of a ``/request/...`` call: ``pvcls``, or ``fuzz-job-N/NUMBER/JOBID/METHOD`` made hostile."""
    if draw(st.integers(0, 2)) == 0:
        return "/request/pvcls", "pvcls"
    parts = [
        f"fuzz-job-{draw(st.integers(0, 3))}",
        str(draw(st.integers(0, 3))),
        str(draw(st.sampled_from([1, 2, 10**6]))),
    ]
    method = draw(st.sampled_from(REQUEST_METHODS + ["tail"] * 4))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        where = draw(st.integers(0, len(parts) - 1))
        parts[where] = draw(
            st.one_of(
                HOSTILE_TEXT.filter(lambda t: "/" not in t and t not in ("", ".", "..")),
                st.sampled_from(["%00", "%0A", "a%2Fb"]),
            )
        )
    if draw(st.integers(0, 9)) == 0:
        parts = parts[: draw(st.integers(0, 2))]
    path = "/".join(urllib.parse.quote(part, safe="%") for part in parts + [method])
    return "/request/" + path, method


#: the ``qs`` keys each ``/request`` method reads
QS_KEYS = {"pvcls": ["path", "details"], "tail": ["lines"]}


@st.composite
def qs_args(draw: st.DrawFn, method: str) -> dict[str, Any]:
    """``{"qs": ...}`` for ``method``, with the keys it reads made hostile (now and then the whole ``qs``)."""
    qs: dict[str, Any] = {
        "lines": [str(draw(st.integers(1, 50)))],
        "path": [draw(st.sampled_from(["/", "/folder", "/data/folder"]))],
        "details": [draw(st.sampled_from(["true", "false"]))],
    }
    keys = QS_KEYS.get(method, sorted(qs))
    for key in draw(st.lists(st.sampled_from(keys), max_size=len(keys), unique=True)):
        aimed = FIELD_BAD.get(key, HOSTILE)
        qs[key] = draw(st.one_of(aimed, aimed, HOSTILE)) if draw(st.integers(0, 5)) else qs.pop(key) and None
    return mutate(draw, {"qs": qs}) if draw(st.integers(0, 5)) == 0 else {"qs": qs}


def requests_with_bodies() -> st.SearchStrategy[tuple[tuple[str, str], bytes]]:
    return request_paths().flatmap(lambda where: st.tuples(st.just(where), bodies(qs_args(where[1]))))


# -- the client and the checks --------------------------------------------------
@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes


@dataclass
class Fuzzer:
    """Sends fuzzed requests to ``host:port`` and checks every answer."""

    host: str
    port: int
    #: a valid bearer token for submissions (connectors that need one)
    bearer: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    sent: int = 0

    def send(self, method: str, path: str, body: bytes | None = None) -> Answer:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            headers = dict(self.headers)
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            self.sent += 1
            return Answer(response.status, response.getheader("Content-Type", ""), response.read())
        finally:
            conn.close()

    def state(self) -> tuple[Any, Any]:
        return tuple(json.loads(self.send("GET", path).body) for path in ("/running", "/queued"))

    def check(self, method: str, path: str, body: bytes | None, kind: str) -> Answer:
        before = self.state() if method == "POST" else None
        answer = self.send(method, path, body)
        where = f"{method} {path[:80]} {(body or b'')[:200]!r}"
        assert answer.status < 500 or (path, answer.status) in FIVE_OK, (
            f"{where}: {answer.status} {answer.body[:300]!r}"
        )
        if answer.status >= 400 or kind not in TEXT_OK:
            assert answer.content_type.startswith("application/json"), f"{where}: {answer.content_type}"
            value = json.loads(answer.body)
            if answer.status >= 400 and (path, answer.status) not in FIVE_OK:
                assert isinstance(value, dict) and isinstance(value.get("error"), str), f"{where}: {value!r}"
        request_size = len(method) + len(path) + len(body or b"") + 100
        assert len(answer.body) <= max(FACTOR * request_size, FLOOR), f"{where}: {len(answer.body)} bytes"
        if before is not None and 400 <= answer.status < 500:
            assert self.state() == before, f"{where}: the state changed after a {answer.status}"
        return answer


#: the values of :data:`KNOWN_BAD` the sweep sends in every field (all of them, or a few on a slow cluster)
def sweep_values(few: bool = False) -> list[Any]:
    values = [v for v in KNOWN_BAD_VALUES if not few or any(v == f and type(v) is type(f) for f in FEW)]
    return values + [[v] for v in values if isinstance(v, str)]


FEW: list[Any] = [
    "²",
    "\u0662",
    "1\n",
    "nl-test\n",
    "9999999999999999999",
    "x" * 20_000,
    2**63,
    10**30,
    -1,
    None,
    True,
    [],
]


def form(args: Any) -> bytes:
    return urllib.parse.urlencode({"args": json.dumps(args)}).encode()


def sweep(fuzzer: Fuzzer, few: bool = False) -> None:
    """Each known-bad value in each field of each endpoint, and in each key of the template, once."""
    values = sweep_values(few)
    job = {"name": "fuzz-job-0", "number": 0, "jobid": "1", "force": False}
    submit = {
        "name": "fuzz-sub-0",
        "number": 0,
        "nodes": 1,
        "bearer": fuzzer.bearer,
        "hpc_script": {
            "shell": base64.b64encode(
                legacy_template("sleep 600", extra={"JOBOBJ_DEVICES": '["sbatch_hold=True"]'}).encode()
            ).decode()
        },
    }
    for field_name in list(job) + ["(extra)"]:
        for value in values:
            for path in JOB_PATHS:
                fuzzer.check("POST", path, form({**job, field_name: value}), "json")
    for field_name in list(submit):
        for value in values:
            fuzzer.check("POST", "/submit", form({**submit, field_name: value}), "json")
    for key in TEMPLATE_KEYS + ["JOBOBJ_DEVICES"]:
        for value in [v for v in values if isinstance(v, str)] + ["{", "}", '["overlay=\u0662"]', '["bogus"]']:
            text = legacy_template("sleep 600", extra={"JOBOBJ_DEVICES": '["sbatch_hold=True"]', key: value})
            fuzzer.check(
                "POST",
                "/submit",
                form({**submit, "hpc_script": {"shell": base64.b64encode(text.encode()).decode()}}),
                "json",
            )
    for insert in INSERT_VALUES:
        text = legacy_template("sleep 600", extra={"JOBOBJ_DEVICES": '["sbatch_hold=True"]'})
        text = text.replace("{DOWNSTREAM_PARAMETERS}\n", "{DOWNSTREAM_PARAMETERS}\n" + insert + "\n", 1)
        fuzzer.check(
            "POST",
            "/submit",
            form({**submit, "hpc_script": {"shell": base64.b64encode(text.encode()).decode()}}),
            "json",
        )
    for method in REQUEST_METHODS + ["pvcls"]:
        base = "/request/pvcls" if method == "pvcls" else f"/request/fuzz-job-0/0/1/{method}"
        kind = method if method in ("tail", "pvcls", "info") else "empty"
        for key in QS_KEYS.get(method, ["lines"]):
            for value in values:
                fuzzer.check("POST", base, form({"qs": {key: value}}), kind)
        if method != "pvcls":
            for part in range(3):
                for value in values:
                    if isinstance(value, str) and value and "/" not in value and value not in (".", ".."):
                        parts = ["fuzz-job-0", "0", "1"]
                        parts[part] = value
                        path = "/request/" + "/".join(urllib.parse.quote(p, safe="") for p in parts + [method])
                        fuzzer.check("POST", path, form({"qs": {}}), kind)


def run_fuzz(fuzzer: Fuzzer, examples: int, few: bool = False) -> None:
    """The sweep, then every endpoint group with ``examples`` random requests each (deterministic)."""
    sweep(fuzzer, few)
    budget = settings(
        max_examples=examples, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )

    @budget
    @given(st.sampled_from(GET_PATHS))
    def gets(path: str) -> None:
        fuzzer.check("GET", path, None, path)

    @budget
    @given(bodies(job_args(submit=True, bearer=fuzzer.bearer)))
    def submit(body: bytes) -> None:
        fuzzer.check("POST", "/submit", body, "json")

    @budget
    @given(st.sampled_from(JOB_PATHS), bodies(job_args(submit=False, bearer=fuzzer.bearer)))
    def jobs(path: str, body: bytes) -> None:
        fuzzer.check("POST", path, body, "json")

    @budget
    @given(requests_with_bodies())
    def requests(call: tuple[tuple[str, str], bytes]) -> None:
        (path, method), body = call
        kind = "empty" if method in ("ping", "connect", "shutdown", "abort", "other") else method
        fuzzer.check("POST", path, body, kind)

    @budget
    @given(
        st.sampled_from(["PUT", "DELETE", "PATCH", "GET", "POST"]),
        st.one_of(
            st.sampled_from(GET_PATHS + JOB_PATHS + ["/submit", "/nope", "/request", "/" + "x" * 5000]),
            st.text(alphabet="/abc%.", max_size=30).map(lambda p: "/" + p),
        ),
    )
    def wrong(method: str, path: str) -> None:
        if (method == "GET") != (path in GET_PATHS):
            fuzzer.check(method, urllib.parse.quote(path, safe="/%"), b"" if method != "GET" else None, "json")

    for test in (gets, submit, jobs, requests, wrong):
        test()

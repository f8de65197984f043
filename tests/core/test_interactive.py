"""Interactive jobs: JARVICE_JOBS_DOMAIN, labels and secrets, the connect URL, and the refusals at submission."""

from __future__ import annotations

import re

import pytest

from dssr_core import BadRequest, ConfigError, Downstream, JobSpec, Settings
from dssr_core._interactive import LABEL_PATTERN, InteractiveSettings, JobsDomain, template_port
from dssr_local.shell import ShellExecutor

KEY = "0123456789abcdef0123456789abcdef-key"


def settings(**env: str) -> InteractiveSettings:
    return InteractiveSettings.from_settings(Settings({"JARVICE_DSSR_INTERACTIVE_KEY": KEY, **env}))


@pytest.mark.parametrize(
    "text, scheme, host, port, path",
    [
        ("jobs.example.org", "https", "jobs.example.org", None, None),
        ("http://Jobs.Example.org:8080", "http", "jobs.example.org", 8080, None),
        ("portal.example.org/job$", "https", "portal.example.org", None, "/job$"),
        ("https://portal.example.org:8443/apps/job$", "https", "portal.example.org", 8443, "/apps/job$"),
    ],
)
def test_jobs_domain_reads_the_helm_charts_grammar(text, scheme, host, port, path):
    domain = JobsDomain.parse(text)
    assert (domain.scheme, domain.host, domain.port, domain.path) == (scheme, host, port, path)


@pytest.mark.parametrize(
    "text, words",
    [
        ("lookup/job$", "lookup"),
        ("jobs.example.org/job", "ending in '$'"),
        ("job$.example.org", "'$' belongs in a path"),
        ("ftp://jobs.example.org", "not a domain"),
        ("jobs example.org", "not a host name"),
        ("jobs.example.org:99999", "out of range"),
        ("portal.example.org/job$/x", "ending in '$'"),
    ],
)
def test_a_bad_jobs_domain_stops_start_up_naming_the_variable(text, words):
    with pytest.raises(ConfigError) as err:
        settings(JARVICE_JOBS_DOMAIN=text)
    assert "JARVICE_JOBS_DOMAIN" in str(err.value) and words in str(err.value)


def test_host_based_addresses_are_a_subdomain_per_job():
    access = settings(JARVICE_JOBS_DOMAIN="jobs.example.org").access("jarvice-kirby-42", 42)
    assert access.public_addr == f"{access.label}.jobs.example.org"
    assert access.origin == f"https://{access.label}.jobs.example.org"
    assert access.base_url == "/" and access.ingress_path is None
    assert access.environment() == {"JARVICE_SERVICE_PORT": "5902"}


def test_path_based_addresses_put_the_label_in_the_path_and_tell_the_app():
    access = settings(JARVICE_JOBS_DOMAIN="portal.example.org:8443/job$", JARVICE_SERVICE_PORT="2228").access("j", 7)
    assert access.public_addr == f"portal.example.org:8443/job{access.label}"
    assert access.base_url == f"/job{access.label}/"
    assert access.environment() == {"JARVICE_SERVICE_PORT": "2228", "JARVICE_INGRESSPATH": f"job{access.label}"}


def test_labels_and_secrets_are_stable_per_job_distinct_between_jobs_and_keys():
    one = settings(JARVICE_JOBS_DOMAIN="jobs.example.org")
    a, again, b = one.access("job-a", 1), one.access("job-a", 1), one.access("job-b", 2)
    other_key = InteractiveSettings.from_settings(
        Settings(
            {
                "JARVICE_DSSR_INTERACTIVE_KEY": "another key of at least thirty-two chars",
                "JARVICE_JOBS_DOMAIN": "jobs.example.org",
            }
        )
    ).access("job-a", 1)
    assert (a.label, a.password, dict(a.randoms)) == (again.label, again.password, dict(again.randoms))
    for different in (b, other_key):
        assert a.label != different.label and a.password != different.password
        assert all(a.randoms[n] != different.randoms[n] for n in a.randoms)
    assert LABEL_PATTERN.match(a.label) and a.label.startswith("1-")
    assert {n: len(v) for n, v in a.randoms.items()} == {16: 16, 32: 32, 64: 64, 128: 128}
    assert all(re.fullmatch(r"[A-Za-z0-9]+", v) for v in (a.password, *a.randoms.values()))
    assert one.label_matches(a.label, "job-a") and not one.label_matches(a.label, "job-b")
    assert not one.label_matches(a.label.replace("1-", "2-"), "job-a")


def test_no_secret_in_the_reprs():
    access = settings(JARVICE_JOBS_DOMAIN="jobs.example.org").access("job-a", 1)
    text = repr(access) + repr(settings(JARVICE_JOBS_DOMAIN="jobs.example.org"))
    assert access.password not in text and KEY not in text
    assert not any(v in text for v in access.randoms.values())


@pytest.mark.parametrize(
    "env, words",
    [
        ({"JARVICE_DSSR_INTERACTIVE_KEY": ""}, "is not set"),
        ({"JARVICE_DSSR_INTERACTIVE_KEY": "short"}, "shorter than 32"),
    ],
)
def test_a_jobs_domain_without_a_key_stops_start_up(env, words):
    with pytest.raises(ConfigError, match=words):
        InteractiveSettings.from_settings(Settings({"JARVICE_JOBS_DOMAIN": "jobs.example.org", **env}))


@pytest.mark.parametrize("listen", ["8081", "host:", ":8081", "127.0.0.1:0", "127.0.0.1:70000", "a b:1"])
def test_a_bad_proxy_listen_address_names_the_variable(listen):
    with pytest.raises(ConfigError, match="JARVICE_DSSR_PROXY_LISTEN"):
        settings(JARVICE_DSSR_PROXY_LISTEN=listen)


def test_proxy_defaults_and_ipv6_listen():
    default = settings()
    assert (default.proxy_host, default.proxy_port, default.service_port, default.enabled) == (
        "127.0.0.1",
        8081,
        5902,
        False,
    )
    assert settings(JARVICE_DSSR_PROXY_LISTEN="[::1]:9000").proxy_host == "::1"


def test_the_desktops_url_leads_to_the_job_with_its_password_and_without_the_inside_port():
    access = settings(JARVICE_JOBS_DOMAIN="jobs.example.org").access("desk", 3)
    template = "https://%PUBLICADDR%:5902/vnc.html?password=%NIMBIXPASSWD%&autoconnect=true&reconnect=true"
    assert access.connect_url(template) == (
        f"https://{access.label}.jobs.example.org/vnc.html?password={access.password}&autoconnect=true&reconnect=true"
    )


def test_jupyters_url_in_path_mode_keeps_the_prefix_and_the_token():
    access = settings(JARVICE_JOBS_DOMAIN="http://portal.example.org/job$").access("nb", 9)
    assert access.connect_url("http://%PUBLICADDR%:8888/?token=%RANDOM64%\n") == (
        f"http://portal.example.org/job{access.label}/?token={access.randoms[64]}"
    )


def test_no_template_gives_the_jobs_root_and_a_foreign_url_is_not_linked():
    access = settings(JARVICE_JOBS_DOMAIN="jobs.example.org").access("w", 1)
    assert access.connect_url(None) == access.connect_url("") == f"{access.origin}/"
    assert access.connect_url("https://evil.example.com/?u=%NIMBIXUSER%") == f"{access.origin}/"
    assert access.connect_url("https://%PUBLICADDR%/x/%UNKNOWN%") == f"{access.origin}/x/%UNKNOWN%"


def test_the_help_page_gets_the_connect_url_and_the_jobs_values():
    access = settings(JARVICE_JOBS_DOMAIN="jobs.example.org").access("w", 1)
    page = access.help_page("<a href='%CONNECTURL%'>%JOBNAME%</a> %NIMBIXUSER%@%PUBLICADDR%", "https://x/", "kirby")
    assert page == f"<a href='https://x/'>w</a> kirby@{access.public_addr}"


def test_an_interactive_submission_without_jobs_domain_is_refused_naming_what_to_set(tmp_path):
    from dssr_local.connector import LocalConnector

    connector = LocalConnector(Settings({"JARVICE_LOCAL_STATE_DIR": str(tmp_path)}))
    try:
        ds = Downstream(connector, ShellExecutor(Settings({})))
        with pytest.raises(BadRequest) as err:
            ds.submit(JobSpec(name="desk", command="sleep 1", interactive=True))
        assert "JARVICE_JOBS_DOMAIN" in str(err.value) and "JARVICE_DSSR_INTERACTIVE_KEY" in str(err.value)
        ds = Downstream(
            connector, ShellExecutor(Settings({})), interactive=settings(JARVICE_JOBS_DOMAIN="jobs.example.org")
        )
        with pytest.raises(BadRequest, match="local connector cannot reach interactive jobs"):
            ds.submit(JobSpec(name="desk", command="sleep 1", interactive=True))
        assert ds.running() == [] and ds.queued() == []
    finally:
        connector.close()


def test_the_vnc_password_file_is_what_vncpasswd_writes():
    from dssr_core._interactive import vnc_password_file

    # `vncpasswd` stores "password" as these 8 bytes (VNC's fixed-key DES); only 8 characters count
    assert vnc_password_file("password").hex() == "dbd83cfd727a1458"
    assert vnc_password_file("passwordANDMORE") == vnc_password_file("password")
    access = settings(JARVICE_JOBS_DOMAIN="jobs.example.org").access("desk", 3)
    import base64

    assert base64.b64decode(access.secrets()["DSSR_VNCPASSWD"]) == vnc_password_file(access.password)


@pytest.mark.parametrize(
    "template, port",
    [
        ("https://%PUBLICADDR%:8888/?token=%RANDOM64%", 8888),
        ("http://%PUBLICADDR%:8080", 8080),
        ("https://%PUBLICADDR%:5902/vnc.html?password=%NIMBIXPASSWD%\nsecond line", 5902),
        ("https://%PUBLICADDR%/", None),
        ("https://%PUBLICADDR%:443/", None),  # the scheme's own port names no app port
        ("http://%PUBLICADDR%:80/", None),
        ("https://example.org:8888/", None),  # not the job's address
        ("", None),
        (None, None),
    ],
)
def test_the_port_a_url_template_names(template, port):
    assert template_port(template) == port


def test_the_app_is_tried_on_its_urls_port_when_allowed_then_on_the_service_port():
    settings = InteractiveSettings.from_settings(
        Settings(
            {
                "JARVICE_JOBS_DOMAIN": "jobs.example.org",
                "JARVICE_DSSR_INTERACTIVE_KEY": "k" * 32,
                "JARVICE_SERVICE_PORT": "7000",
                "JARVICE_DSSR_APP_PORTS": "5902, 8000-8999",
            }
        )
    )
    assert settings.ports_for("https://%PUBLICADDR%:8888/") == (8888, 7000)
    assert settings.ports_for("https://%PUBLICADDR%:5902/vnc.html") == (5902, 7000)
    assert settings.ports_for("https://%PUBLICADDR%:9000/") == (7000,)  # not allowed by the site
    assert settings.ports_for("https://%PUBLICADDR%:7000/") == (7000,)
    assert settings.ports_for(None) == (7000,)
    assert settings.describe()["ports a URL template may name"] == "5902,8000-8999"
    default = InteractiveSettings.from_settings(
        Settings({"JARVICE_JOBS_DOMAIN": "jobs.example.org", "JARVICE_DSSR_INTERACTIVE_KEY": "k" * 32})
    )
    assert default.ports_for("https://%PUBLICADDR%:8888/") == (8888, 5902)
    assert default.ports_for("https://%PUBLICADDR%:22/") == (5902,)  # privileged ports: never an app's


@pytest.mark.parametrize("value", ["0", "70000", "8888-80", "a", "5902,", "1-2-3"])
def test_a_bad_app_ports_value_stops_start_up_naming_the_variable(value):
    with pytest.raises(ConfigError, match="JARVICE_DSSR_APP_PORTS"):
        InteractiveSettings.from_settings(
            Settings(
                {
                    "JARVICE_JOBS_DOMAIN": "jobs.example.org",
                    "JARVICE_DSSR_INTERACTIVE_KEY": "k" * 32,
                    "JARVICE_DSSR_APP_PORTS": value,
                }
            )
        )

"""The real tools: a Prometheus server scrapes a live daemon with its bearer token, and
headless Chromium (Debian's package, driven by Playwright) uses the dashboard.

Both skip with a message when the program is missing, except in CI (CI=true), where
tests/run.sh installs Debian's ``prometheus`` and ``chromium`` packages first.
Screenshots go to ``$MODELD_SCREENSHOTS`` (default: this test's temporary folder).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from conftest import model, wait_until

CHROMIUM = os.environ.get("MODELD_CHROMIUM", "/usr/bin/chromium")


def need(program):
    found = shutil.which(program) or (
        program if os.path.isabs(program) and os.access(program, os.X_OK) else None
    )
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("%s is missing in CI: tests/run.sh installs it with apt-get" % program)
    pytest.skip("%s is not installed (apt-get install prometheus chromium)" % program)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spec(name, script, tag):
    return {"name": name, "command": model(script, tag=tag), "stop": {"timeout": 3}}


def test_a_real_prometheus_scrapes_the_daemon_with_the_token(daemon, tmp_path, tag):
    prometheus = need("prometheus")
    daemon.start()
    daemon.client().deploy(spec("scraped", "ticker.py", tag))
    target = urllib.parse.urlparse(daemon.url).netloc
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: modeld\n"
        "    authorization: {credentials_file: %s}\n"
        "    static_configs: [{targets: ['%s']}]\n" % (os.path.join(daemon.home, "token"), target)
    )
    port = free_port()
    log_file = open(tmp_path / "prometheus.log", "w")
    server = subprocess.Popen(
        [
            prometheus,
            "--config.file=%s" % config,
            "--storage.tsdb.path=%s" % (tmp_path / "data"),
            "--web.listen-address=127.0.0.1:%d" % port,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )

    def query(expression):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (
            port,
            urllib.parse.urlencode({"query": expression}),
        )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)["data"]["result"]
        except OSError:
            return []

    try:
        found = []
        deadline = time.monotonic() + 60
        while not found and time.monotonic() < deadline:
            found = query('modeld_model_up{model="scraped"}')
            time.sleep(0.5)
        assert found, (tmp_path / "prometheus.log").read_text()[-3000:]
        assert found[0]["value"][1] == "1"
        assert query('up{job="modeld"}')[0]["value"][1] == "1"  # scrapes succeed: the token works
        lines = query('modeld_model_log_lines_total{model="scraped",stream="stdout"}')
        assert lines and float(lines[0]["value"][1]) >= 1
        assert query("modeld_build_info")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log_file.close()


def logs_show(page, predicate, timeout=10.0):
    """Poll the log viewer's text from Python (the page's CSP forbids eval'd predicates)."""
    wait_until(lambda: predicate(page.text_content("#log-lines") or ""), timeout, 0.1, "the logs")


def test_the_dashboard_in_headless_chromium(daemon, tmp_path, tag):
    need(CHROMIUM)
    playwright = pytest.importorskip("playwright.sync_api")
    shots = os.environ.get("MODELD_SCREENSHOTS") or str(tmp_path / "screenshots")
    os.makedirs(shots, exist_ok=True)
    daemon.start()
    client = daemon.client()
    client.deploy(spec("chat-small", "ticker.py", tag))
    client.deploy(spec("embedder", "weird.py", tag))
    wait_until(lambda: "known line" in str(client.logs("embedder", tail=5)), message="the line")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(daemon.url + "/ui")
            page.fill("#token", daemon.token)
            page.click("#login button[type=submit]")
            page.wait_for_selector('tr[data-model="embedder"]', timeout=10_000)
            assert page.locator("#models tbody tr").count() == 2
            page.screenshot(path=os.path.join(shots, "models.png"))
            page.click('tr[data-model="chat-small"] button[data-action="stop"]')
            stopped = 'tr[data-model="chat-small"] .status.stopped'
            page.wait_for_selector(stopped, timeout=5_000)
            page.click('tr[data-model="embedder"] td.name button')
            page.wait_for_selector("#log-lines div", timeout=10_000)
            logs_show(page, lambda text: "known line 42" in text)
            logs = page.text_content("#log-lines")
            assert "<script>window.__modeld_pwned = 1</script>" in logs  # shown as text
            assert page.evaluate("window.__modeld_pwned === undefined")
            assert page.locator("#log-lines script").count() == 0
            page.select_option("#log-stream", "stderr")
            page.click("#log-filters button[type=submit]")
            logs_show(page, lambda text: "known line" not in text)
            assert "something broke" in page.text_content("#log-lines")
            page.select_option("#log-stream", "")
            page.click("#log-filters button[type=submit]")
            logs_show(page, lambda text: "known line 42" in text)
            page.screenshot(path=os.path.join(shots, "dashboard.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
    print("\nscreenshots: %s" % shots, file=sys.stderr)

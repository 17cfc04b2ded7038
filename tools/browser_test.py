"""The course in a real browser: JupyterLab on the loopback, driven in headless Chromium.

What a learner sees first is checked as a learner sees it: notebooks 01 and 02 (the exercise
copies) are opened in JupyterLab, run down to their interactive explorer, and this script asserts

- the exercise stubs are there and their checks answer ``[NOT YET]``;
- each explorer renders as a live widget (text boxes and chips, not its plain-text form);
- the explorer reacts to typed input (its chips change to the new sentence's tokens);
- the page logs no JavaScript error other than the Colab badge's image, which cannot load offline.

It serves a copy of ``notebooks/`` (Lab's autosave never touches the committed files), starts
everything it needs and stops everything it started, and keeps a screenshot of each notebook
(and of any failure) in ``build/test-artifacts/browser/``.

What it needs: Playwright for Python (the ``browser`` extra; ``make test`` installs it) and a
Chromium. It uses ``$BERT_WORKBOOK_CHROMIUM`` or a system Chromium; where there is none and it
runs as root on Debian or Ubuntu, it installs the ``chromium`` package with apt-get. Where it
still has none it says so and skips (exit 0), unless ``BERT_WORKBOOK_BROWSER_TEST=required``
(CI sets it), which makes a missing browser a failure. ``BERT_WORKBOOK_BROWSER_TEST=skip`` skips.

    python tools/browser_test.py            # what make test runs
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "test-artifacts" / "browser"
MODE_VAR = "BERT_WORKBOOK_BROWSER_TEST"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Chromium flags for a closed network: no background connections to Google's services.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# Each notebook: the explorer cell's marker, what to type into its first text box, and a token
# that must then appear among its chips (and did not before).
NOTEBOOKS = {
    "01_tokenization.ipynb": ("token_explorer(", "Playwright types these words", "playwright"),
    "02_masked_language_modeling.ipynb": ("mask_explorer(", "zebras zebras zebras zebras", "zebra"),
}
# The only console error allowed: the Colab badge image (an external address; offline here).
ALLOWED_ERROR_HINTS = ("colab.research.google.com/assets/colab-badge.svg", "mybinder.org/badge",
                       "ERR_NAME_NOT_RESOLVED", "ERR_INTERNET_DISCONNECTED", "ERR_CONNECTION_REFUSED")


class BrowserTestError(AssertionError):
    """A check of the course in the browser failed."""


def load_playwright():
    """Playwright's ``sync_playwright``, or None when the package is not installed."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    return sync_playwright


def find_chromium(install: bool) -> str | None:
    """A Chromium executable: ``$BERT_WORKBOOK_CHROMIUM``, one on PATH, or (as root on Debian or
    Ubuntu, when ``install``) Debian's package installed with apt-get. None when there is none."""
    named = os.environ.get("BERT_WORKBOOK_CHROMIUM", "").strip()
    if named:
        return named if Path(named).exists() else None
    for name in CHROMIUM_CANDIDATES:
        if found := shutil.which(name):
            return found
    if not install or os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    print("browser test: installing Debian's chromium package (apt-get) ...", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, **quiet).returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, **quiet)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, **quiet)
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_lab(folder: Path, port: int, token: str, log) -> subprocess.Popen:
    """JupyterLab on the loopback over ``folder``, with the app exposed to page scripts so that
    the test can run commands (run cells) as the menus do. Kernels run in smoke mode."""
    jupyter = Path(sys.executable).with_name("jupyter")
    args = [str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
            "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=False"]
    if os.name == "posix" and os.geteuid() == 0:
        args.append("--allow-root")
    settings = folder / ".lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # No "get notified about Jupyter news?" toast over the screenshots (and no request for it).
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = {**os.environ, "BERT_WORKBOOK_SMOKE": "1", "HF_HUB_OFFLINE": "1",
           "JUPYTER_CONFIG_DIR": str(folder / ".jupyter-config"),
           "JUPYTERLAB_SETTINGS_DIR": str(folder / ".lab-settings")}
    return subprocess.Popen(args, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for_lab(port: int, token: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrowserTestError(f"JupyterLab exited with code {process.returncode} before answering")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise BrowserTestError(f"JupyterLab did not answer on port {port} within {timeout:.0f} s")


def shut_down_kernels(port: int, token: str) -> None:
    """Ask the server to shut down every kernel it started (kernels run in sessions of their own,
    so stopping the server's process group alone would leave them running)."""
    base = f"http://127.0.0.1:{port}/api/kernels"
    try:
        with urllib.request.urlopen(f"{base}?token={token}", timeout=5) as answer:
            kernels = json.load(answer)
        for kernel in kernels:
            request = urllib.request.Request(f"{base}/{kernel['id']}?token={token}", method="DELETE")
            urllib.request.urlopen(request, timeout=15).close()
    except OSError as error:
        print(f"browser test: could not shut down the kernels: {error}", flush=True)


def stop(process: subprocess.Popen) -> None:
    """Stop a process started in its own session, and everything it started (kernels)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=5)


def explorer_cell_index(path: Path, marker: str) -> int:
    """Index of the first code cell whose source contains ``marker``."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] == "code" and marker in "".join(cell["source"]):
            return index
    raise BrowserTestError(f"{path.name}: no code cell contains {marker!r}")


RUN_THROUGH = """async (index) => {
  const panel = window.jupyterapp.shell.currentWidget;
  await panel.sessionContext.ready;
  panel.content.activeCellIndex = index;
  await window.jupyterapp.commands.execute('notebook:run-all-above');
  panel.content.activeCellIndex = index;
  await window.jupyterapp.commands.execute('notebook:run-cell');
  return panel.content.widgets.map(cell => cell.model.type === 'code' ? cell.model.executionCount : null);
}"""


def check_notebook(page, base: str, token: str, name: str, folder: Path, timeout_ms: int) -> list[str]:
    """Open ``name`` in Lab, run it down to its explorer and check what a learner sees; return
    what failed (empty when all holds)."""
    marker, typed, expected_token = NOTEBOOKS[name]
    index = explorer_cell_index(folder / name, marker)
    failures = []
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_ms)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext", timeout=timeout_ms)
    started = time.perf_counter()
    counts = page.evaluate(RUN_THROUGH, index)
    print(f"browser test: {name}: ran {sum(c is not None for c in counts[:index + 1])} code cells "
          f"through cell {index} in {time.perf_counter() - started:.0f} s", flush=True)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()

    # The exercise stubs are there, and their checks answer [NOT YET].
    stubs = page.locator(".jp-Cell .jp-InputArea", has_text="raise NotImplementedError").count()
    not_yet = page.locator(".jp-OutputArea", has_text="[NOT YET]").count()
    if stubs == 0:
        failures.append(f"{name}: no exercise stub (raise NotImplementedError) is shown")
    if not_yet == 0:
        failures.append(f"{name}: no check answered [NOT YET]")
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                          has_text="Traceback").count()
    if errors:
        failures.append(f"{name}: {errors} cell(s) above the explorer raised an error")

    # The explorer is a live widget, not its plain-text form.
    output = cell.locator(".jp-OutputArea")
    try:
        output.locator(".jupyter-widgets input[type='text']").first.wait_for(timeout=timeout_ms)
    except Exception:  # noqa: BLE001  (Playwright's timeout error: say what was shown instead)
        shown = output.inner_text()[:200] if output.count() else "(no output)"
        failures.append(f"{name}: the explorer did not render as a live widget; the cell shows {shown!r}")
        return failures
    if "interactive explorer" in output.inner_text():
        failures.append(f"{name}: the explorer's plain-text form is shown beside the widget")
    chips = output.locator(".widget-html-content").first
    before = chips.inner_text()
    if expected_token in before:
        failures.append(f"{name}: {expected_token!r} is among the chips before anything was typed")

    # It reacts to typed input.
    box = output.locator(".jupyter-widgets input[type='text']").first
    box.click()
    box.fill("")
    box.type(typed, delay=10)
    try:
        page.wait_for_function(
            """([node, token]) => node.innerText.includes(token)""",
            arg=[chips.element_handle(), expected_token], timeout=timeout_ms)
    except Exception:  # noqa: BLE001
        failures.append(f"{name}: typing {typed!r} did not change the explorer (no {expected_token!r} "
                        f"among its chips: {chips.inner_text()[:200]!r})")
    return failures


def main() -> int:
    mode = os.environ.get(MODE_VAR, "").strip().lower()
    if mode == "skip":
        print(f"browser test: skipped ({MODE_VAR}=skip)")
        return 0
    required = mode == "required"
    sync_playwright = load_playwright()
    if sync_playwright is None:
        print("browser test: SKIPPED: Playwright is not installed: pip install -e '.[browser]' "
              "(make test does)")
        return 1 if required else 0
    chromium = find_chromium(install=True)
    if chromium is None:
        print("browser test: SKIPPED: no Chromium found. Install one (Debian/Ubuntu: apt-get install "
              "chromium) or name it in BERT_WORKBOOK_CHROMIUM.")
        return 1 if required else 0

    # A terminated test still stops Lab, its kernels and the browser (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    timeout_ms = int(float(os.environ.get("BERT_WORKBOOK_BROWSER_TIMEOUT", "120")) * 1000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bert-workbook-lab-") as tmp:
        folder = Path(tmp)
        for name in NOTEBOOKS:
            shutil.copy2(ROOT / "notebooks" / name, folder / name)
        port, token = free_port(), secrets.token_hex(16)
        with open(ARTIFACTS / "jupyterlab.log", "w") as log:
            lab = start_lab(folder, port, token, log)
            try:
                wait_for_lab(port, token, lab)
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                                         args=CHROMIUM_ARGS)
                    try:
                        page = browser.new_page(viewport={"width": 1400, "height": 1000})
                        console_errors: list[str] = []
                        page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
                        page.on("pageerror", lambda e: console_errors.append(f"uncaught: {e}"))
                        base = f"http://127.0.0.1:{port}"
                        for name in NOTEBOOKS:
                            console_errors.clear()
                            try:
                                failures += check_notebook(page, base, token, name, folder, timeout_ms)
                            except Exception as error:  # noqa: BLE001  (report it, keep the screenshot)
                                failures.append(f"{name}: {type(error).__name__}: {error}")
                            shot = ARTIFACTS / f"{Path(name).stem}.png"
                            page.screenshot(path=str(shot), full_page=False)
                            unexpected = [e for e in console_errors
                                          if not any(hint in e for hint in ALLOWED_ERROR_HINTS)]
                            failures += [f"{name}: JavaScript error: {e[:300]}" for e in unexpected]
                            page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()"
                                          ".catch(() => null)")
                    finally:
                        browser.close()
            finally:
                shut_down_kernels(port, token)
                stop(lab)
    took = time.perf_counter() - start
    for failure in failures:
        print("browser test: FAILED:", failure)
    print(f"browser test: {'passed' if not failures else 'FAILED'} in {took:.0f} s "
          f"({len(NOTEBOOKS)} notebooks; screenshots in {ARTIFACTS.relative_to(ROOT)})", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

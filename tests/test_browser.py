"""The student path in a real browser: `./course lab`, notebook 2, type the answer, run, ✓, nbgrader's Validate.

Playwright for Python drives Debian's Chromium (`apt-get install chromium`; .ci/run installs it).  Skipped only
when no Chromium binary is there or playwright cannot be imported.  Screenshots land in pytest's tmp_path:
01_first_screen.png, 02_self_check_passed.png, 03_validate_dialog.png.
"""
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from lab_server import start_lab, stop

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "02_forward_closed_form/02_forward_closed_form.ipynb"
ANSWER = "return torch.linspace(beta_start, beta_end, timesteps)"
NEWS = "official Jupyter news"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium():
    for cand in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def _start_lab(tmp_path):
    token = "course-browser-token"
    proc, base = start_lab(tmp_path, token, timeout=90, DDPM_PROFILE="fast", MPLBACKEND="Agg")
    return proc, base, token



def _no_news_popup(page):
    assert page.get_by_text(NEWS).count() == 0, "the 'official Jupyter news' pop-up is shown"


def test_student_fills_a_blank_runs_it_and_validates(tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium binary (/usr/bin/chromium); install it with `apt-get install chromium`")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as e:
        pytest.skip(f"playwright cannot be imported ({e}); `./course setup` installs it")

    t0 = time.monotonic()
    proc, base, token = _start_lab(tmp_path)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.set_default_timeout(30_000)

                # the first screen: `/` opens the first notebook of the workspace, no news pop-up
                page.goto(f"{base}/?token={token}")
                expect(page.locator(".jp-NotebookPanel:visible")).to_have_count(1)
                expect(page.locator(".lm-TabBar-tab.lm-mod-current",
                                    has_text="01_forward_diffusion_1d.ipynb")).to_have_count(1)
                first = page.locator(".jp-NotebookPanel:visible")
                expect(first.locator(".jp-KernelName")).to_have_text("Python (DDPM course)")   # no kernel dialog
                expect(first.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)
                page.screenshot(path=tmp_path / "01_first_screen.png")
                _no_news_popup(page)

                # open notebook 2 from the file browser, whose root is the workspace (no instructor sources)
                page.locator(".jp-FileBrowser .jp-BreadCrumbs-home").click()
                listing = page.locator(".jp-FileBrowser .jp-DirListing-item")
                expect(listing.filter(has_text="02_forward_closed_form")).to_have_count(1)
                names = set(listing.locator(".jp-DirListing-itemText").all_inner_texts())
                assert "source" not in names and "notebooks" not in names, names
                listing.filter(has_text="02_forward_closed_form").dblclick()
                listing.filter(has_text="02_forward_closed_form.ipynb").dblclick()
                panel = page.locator(".jp-NotebookPanel:visible")
                expect(page.locator(".lm-TabBar-tab.lm-mod-current", has_text="02_forward_closed_form.ipynb")).to_have_count(1)
                expect(panel.locator(".jp-KernelName")).to_have_text("Python (DDPM course)")
                expect(panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)

                # type the answer over the `return None` line of linear_beta_schedule, in the editor
                cells = panel.locator(".jp-Notebook .jp-Cell")
                blank = cells.filter(has_text="def linear_beta_schedule")
                expect(blank).to_have_count(1)
                blank.locator(".cm-line", has_text="return None").click()
                page.keyboard.press("End")
                page.keyboard.press("Shift+Home")
                page.keyboard.type(ANSWER)
                code = blank.locator(".cm-content").inner_text()
                assert ANSWER in code and "return None" not in code, code
                page.keyboard.press("Escape")

                # run: select the self-check cell, Run ▸ Run All Above Selected Cell, then Shift+Enter on it
                check = cells.filter(has_text="check_linear_beta_schedule(linear_beta_schedule)")
                expect(check).to_have_count(1)
                check.locator(".jp-InputPrompt").click()
                page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Run").first.click()
                page.get_by_role("menuitem", name="Run All Above Selected Cell").click()
                check.locator(".jp-InputPrompt").click()
                page.keyboard.press("Shift+Enter")
                # wait until the cell has run (its prompt shows a number), then read its output
                expect(check.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=90_000)
                expect(check.locator(".jp-OutputArea")).to_contain_text("✓ linear_beta_schedule", timeout=5_000)
                page.screenshot(path=tmp_path / "02_self_check_passed.png")

                # nbgrader's Validate button (saves, then validates the notebook on the server)
                panel.locator(".jp-Toolbar-item", has_text="Validate").locator("jp-button, button").first.click()
                dialog = page.locator(".jp-Dialog")
                expect(dialog.locator(".jp-Dialog-header")).to_have_text("Validation Results", timeout=90_000)
                body = dialog.locator(".jp-Dialog-body")
                verdict = body.inner_text().strip()
                page.screenshot(path=tmp_path / "03_validate_dialog.png")
                (tmp_path / "validate_verdict.txt").write_text(verdict)
                print(f"\nValidate verdict: {verdict!r}")
                # `./course setup` makes Validate report every failing cell (Validator.validate_all): the answered
                # blank's self-check passes, q_sample's blanks are still None and its self-check says so.
                expect(dialog.locator(".validation-failed")).to_have_count(1)
                assert "sqrt_alpha_bar is still None" in verdict, verdict
                assert "linear_beta_schedule returned None" not in verdict and "changed" not in verdict.lower(), verdict
                dialog.get_by_role("button", name="Ok").click()
                expect(dialog).to_have_count(0)
                _no_news_popup(page)   # by now (well past start-up) the pop-up would have appeared
            finally:
                browser.close()
    finally:
        stop(proc)
    # the answer was saved into the workspace copy, not into notebooks/release
    saved = (tmp_path / "workspace" / NOTEBOOK).read_text()
    assert ANSWER in saved and ANSWER not in (ROOT / "notebooks" / "release" / NOTEBOOK).read_text()
    wall = time.monotonic() - t0
    print(f"browser test wall time: {wall:.1f} s; screenshots in {tmp_path}")
    assert wall < 120, f"the browser test took {wall:.0f} s (budget 120 s)"

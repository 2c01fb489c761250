#!/usr/bin/env python3
"""Drives the web console (logctl serve) in a real browser: Debian's chromium, headless,
through selenium and Debian's chromedriver. Each check saves a screenshot to SHOT.

  console_browser.py search CONSOLE QUERY LINE SHOT
      The search page for QUERY (last hour) lists LINE as a message, the histogram has at
      least one bar, and the sidebar lists host.name; a drag across the histogram then zooms
      into the absolute range dragged over (and searches it).
  console_browser.py tail CONSOLE QUERY FILE LINE SHOT
      With live tail on, LINE appended to FILE after the page is shown appears within 3 s.
  console_browser.py inert CONSOLE QUERY SHOT LINE...
      Each LINE (markup meant to run) is shown as text, exactly, and nothing of it ran.
  console_browser.py context CONSOLE LINE SHOT EXPECTED...
      LINE found, opened, and "in context" shows exactly the EXPECTED lines, in order, with
      LINE marked among them.
  console_browser.py more CONSOLE QUERY SHOT
      "Load more" until it is gone shows every match once: as many rows as the total.
  console_browser.py config CONSOLE INVALID ERROR VALID TOKEN SHOT
      The configuration page: INVALID typed into the editor shows exactly ERROR with the
      entry's line marked; VALID is valid; a save without the token is refused; with TOKEN it
      is saved. Prints "saved at revision R" last; also saves SHOT with -invalid before .png.
  console_browser.py dryrun CONSOLE ENTRY LINE SHOT
      On the configuration page, the dry run of ENTRY over LINE shows the document the
      transfer would index: its message is LINE, its index the entry's topic's. Prints it.
  console_browser.py dlq CONSOLE TOPIC REASON LINE TOKEN SHOT
      The dead letters of TOPIC list LINE with a reason starting with REASON; ticked and
      replayed with TOKEN, the page says where it went.
  console_browser.py fleet CONSOLE KIND/NAME STATE SHOT TIMEOUT [FILE]
      The fleet page shows the daemon KIND/NAME in STATE within TIMEOUT seconds (it refreshes
      itself: the page is not reloaded); with FILE, its row opened lists FILE among its files.

Prints what it saw; exits 1 with the reason on a failed check.
"""
import json
import sys
import time
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By


def browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait_for(what, check, timeout):
    deadline = time.time() + timeout
    while True:
        try:
            found = check()
        except Exception:  # the page is still being drawn
            found = None
        if found:
            return found
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def messages(d):
    return [td.text for td in d.find_elements(By.CSS_SELECTOR, "#results tr.hit td.msg")]


def search_url(console, query, **extra):
    params = {"q": query, "since": "1h", **extra}
    return f"{console}/#search?{urllib.parse.urlencode(params)}"


def search(d, console, query, line):
    d.get(search_url(console, query))
    wait_for(f"the line {line!r}", lambda: line in messages(d), 15)
    bars = [r for r in d.find_elements(By.CSS_SELECTOR, "#histogram rect")
            if float(r.get_attribute("height")) > 0]
    if not bars:
        raise AssertionError("the histogram has no bar")
    fields = [h.text for h in d.find_elements(By.CSS_SELECTOR, "#sidebar h4")]
    if "host.name" not in fields:
        raise AssertionError(f"the sidebar has no host.name: {fields}")
    print(f"ok: {line!r} found; summary {d.find_element(By.ID, 'summary').text!r}; {len(bars)} bars; "
          f"sidebar {fields}")
    # Drag over the middle half of the hour: 15 to 45 minutes ago.
    svg = d.find_element(By.ID, "histogram")
    width = svg.size["width"]
    ActionChains(d).move_to_element_with_offset(svg, -int(width * 0.25), 0).click_and_hold() \
        .move_by_offset(int(width * 0.5), 0).release().perform()
    wait_for("the zoom", lambda: "since=custom" in d.current_url, 5)
    zoomed = urllib.parse.parse_qs(urllib.parse.urlparse(d.current_url).fragment.split("?", 1)[1])
    start, end = (time.mktime(time.strptime(zoomed[k][0], "%Y-%m-%dT%H:%M:%S")) for k in ("from", "to"))
    if not 1700 < end - start < 1900:
        raise AssertionError(f"dragged over half an hour, zoomed to {zoomed['from']} .. {zoomed['to']}")
    wait_for("the zoomed search", lambda: d.find_element(By.ID, "summary").text.endswith("ms)"), 15)
    print(f"ok: dragged to {zoomed['from'][0]} .. {zoomed['to'][0]}: {d.find_element(By.ID, 'summary').text}")


def context(d, console, line, expected):
    d.get(search_url(console, f'"{line}"'))
    wait_for(f"the line {line!r}", lambda: line in messages(d), 15)
    row = next(r for r in d.find_elements(By.CSS_SELECTOR, "#results tr.hit")
               if r.find_element(By.CSS_SELECTOR, "td.msg").text == line)
    row.click()
    d.find_element(By.XPATH, "//tr[@class='detail' and not(@hidden)]//button[text()='in context']").click()
    got = wait_for("the lines around it", lambda: [
        td.text for td in d.find_elements(By.CSS_SELECTOR, "#context td.msg")] or None, 10)
    anchor = d.find_element(By.CSS_SELECTOR, "#context tr.anchor td.msg").text
    if got != expected or anchor != line:
        raise AssertionError(f"in context: {got} (marked {anchor!r}), expected {expected}")
    print(f"ok: in context: {len(got)} lines in order, {line!r} marked")


def more(d, console, query):
    d.get(search_url(console, query))
    total = int(wait_for("the summary", lambda: d.find_element(By.ID, "summary").text.split(" matches")[0]
                         if " matches" in d.find_element(By.ID, "summary").text else None, 15))
    while d.find_element(By.ID, "more").is_displayed():
        shown = len(messages(d))
        d.find_element(By.ID, "more").click()
        wait_for("the next page", lambda: len(messages(d)) > shown, 10)
    ids = [r.get_attribute("data-id") for r in d.find_elements(By.CSS_SELECTOR, "#results tr.hit")]
    if len(ids) != total or len(set(ids)) != total:
        raise AssertionError(f"{len(ids)} rows ({len(set(ids))} different) for {total} matches")
    print(f"ok: {total} matches, all shown once after paging")


def tail(d, console, query, path, line):
    d.get(search_url(console, query, tail="1"))
    wait_for("the first results", lambda: d.find_element(By.ID, "summary").text.endswith("ms)"), 15)
    start = time.time()
    with open(path, "a") as f:
        f.write(line + "\n")
    wait_for(f"the tailed line {line!r}", lambda: line in messages(d), 3)
    print(f"ok: live tail showed {line!r} {time.time() - start:.1f}s after it was written")


def inert(d, console, query, lines):
    d.get(search_url(console, query))
    wait_for("every markup line", lambda: all(l in messages(d) for l in lines), 15)
    ran = d.execute_script("return window.__xss === undefined ? null : String(window.__xss)")
    if ran is not None:
        raise AssertionError(f"injected script ran: window.__xss = {ran}")
    injected = d.find_elements(By.CSS_SELECTOR, "#results img, #results script, #results b")
    if injected:
        raise AssertionError(f"{len(injected)} injected elements in the results")
    print(f"ok: {len(lines)} markup lines shown as text, none ran")


def set_editor(d, text):
    d.execute_script("const e = document.getElementById('editor'); e.value = arguments[0];"
                     "e.dispatchEvent(new Event('input'));", text)


def config(d, console, invalid, error, valid, token, shot):
    d.get(f"{console}/#config")
    wait_for("the value in etcd", lambda: "revision" in d.find_element(By.ID, "config-key").text, 10)
    check = lambda: d.find_element(By.ID, "config-check").text
    set_editor(d, invalid)
    wait_for(f"the error {error!r}", lambda: check() == error, 10)
    marked = [s.text for s in d.find_elements(By.CSS_SELECTOR, "#gutter .bad")]
    print(f"ok: the editor shows {check()!r}, line {marked} marked")
    d.save_screenshot(shot.replace(".png", "-invalid.png"))
    set_editor(d, valid)
    wait_for("valid", lambda: check() == "valid", 10)
    saved = lambda: d.find_element(By.ID, "config-saved").text
    d.find_element(By.ID, "token").clear()
    d.find_element(By.ID, "config-save").click()
    wait_for("the refusal", lambda: saved() == "the admin token is required for this", 10)
    print(f"ok: without the token: {saved()!r}")
    d.find_element(By.ID, "token").send_keys(token)
    d.find_element(By.ID, "config-save").click()
    wait_for("the save", lambda: saved().startswith("saved: "), 10)
    print(f"ok: {saved()}")
    print(f"saved at revision {saved().rsplit(' ', 1)[1]}")


def dryrun(d, console, entry, line):
    d.get(f"{console}/#config")
    wait_for(f"the entry {entry!r} to try", lambda: entry in [
        o.text for o in d.find_elements(By.CSS_SELECTOR, "#dry-entry option")], 10)
    from selenium.webdriver.support.ui import Select
    Select(d.find_element(By.ID, "dry-entry")).select_by_visible_text(entry)
    d.find_element(By.ID, "dry-lines").send_keys(line)
    d.find_element(By.ID, "dry-run").click()
    text = wait_for("the document", lambda: d.find_element(By.CSS_SELECTOR, "#dry-out pre").text, 10)
    doc = json.loads(text)
    if doc["_source"]["message"] != line:
        raise AssertionError(f"dry run message {doc['_source']['message']!r}, expected {line!r}")
    print(f"ok: dry run: {doc['_index']} {json.dumps(doc['_source'], sort_keys=True)[:160]}")


def dlq(d, console, topic, reason, line, token):
    d.get(f"{console}/#dlq?{urllib.parse.urlencode({'topic': topic})}")
    row = wait_for(f"the dead letter {line!r}", lambda: next(
        r for r in d.find_elements(By.CSS_SELECTOR, "#dlq tbody tr")
        if r.find_element(By.CSS_SELECTOR, "td.msg").text == line), 20)
    got = row.find_element(By.CSS_SELECTOR, "td.reason").text
    if not got.startswith(reason):
        raise AssertionError(f"reason {got!r}, expected it to start with {reason!r}")
    print(f"ok: dead letter {row.get_attribute('data-at')}: {got[:80]!r}")
    row.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
    d.find_element(By.ID, "dlq-token").clear()
    d.find_element(By.ID, "dlq-token").send_keys(token)
    d.find_element(By.ID, "dlq-replay").click()
    done = wait_for("the replay", lambda: d.find_element(By.ID, "dlq-replayed").text.startswith("replayed ")
                    and d.find_element(By.ID, "dlq-replayed").text, 20)
    print(f"ok: {done}")


def fleet(d, console, daemon, state, timeout, file=None):
    d.get(f"{console}/#fleet")
    kind, name = daemon.split("/", 1)
    row = f'#fleet tr[data-kind="{kind}"][data-name="{name}"]'
    got = wait_for(f"{daemon} {state}",
                   lambda: d.find_element(By.CSS_SELECTOR, row).get_attribute("data-state") == state
                   and d.find_element(By.CSS_SELECTOR, row).text, timeout)
    print(f"ok: fleet row: {got}")
    if file:
        d.find_element(By.CSS_SELECTOR, row).click()
        files = wait_for(f"{file} in the opened row", lambda: [
            td.text for td in d.find_elements(By.CSS_SELECTOR, "#fleet tr.detail:not([hidden]) table.inner td")
            if td.text == file], 5)
        print(f"ok: opened, it lists {files[0]}")


def main():
    cmd, console, *rest = sys.argv[1:]
    console = console.rstrip("/")
    d = browser()
    shot = None
    try:
        if cmd == "search":
            query, line, shot = rest
            search(d, console, query, line)
        elif cmd == "tail":
            query, path, line, shot = rest
            tail(d, console, query, path, line)
        elif cmd == "inert":
            query, shot, *lines = rest
            inert(d, console, query, lines)
        elif cmd == "context":
            line, shot, *expected = rest
            context(d, console, line, expected)
        elif cmd == "more":
            query, shot = rest
            more(d, console, query)
        elif cmd == "config":
            invalid, error, valid, token, shot = rest
            config(d, console, invalid, error, valid, token, shot)
        elif cmd == "dryrun":
            entry, line, shot = rest
            dryrun(d, console, entry, line)
        elif cmd == "dlq":
            topic, reason, line, token, shot = rest
            dlq(d, console, topic, reason, line, token)
        elif cmd == "fleet":
            name, state, shot, timeout, *file = rest
            fleet(d, console, name, state, float(timeout), *file)
        else:
            sys.exit(f"unknown command {cmd}")
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    finally:
        if shot:
            d.save_screenshot(shot)
        d.quit()


if __name__ == "__main__":
    main()

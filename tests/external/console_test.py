#!/usr/bin/env python3
"""The quarantine web console in a real browser.

Starts `mxgate serve` (attachment scanning, an admin token) relaying to the
recording sink (tests/docker/sink.py), quarantines messages over SMTP (a zip
holding an .exe, with hostile HTML), then drives headless Chromium through
chromedriver with Selenium: log in with the token, search, open a message,
check the HTML preview ran no script and loaded nothing remote, release it
(exactly one copy arrives), bulk-delete, and check the list fits a 390 px
wide phone. Screenshots go to --shots (default $CONSOLE_SHOTS or
/tmp/mxgate-console-shots) and are checked to be real pictures.

    /usr/bin/python3 tests/external/console_test.py --bin target/debug/mxgate

Needs Debian's chromium, chromium-driver and python3-selenium (run.sh installs
them). Prints one line per check; exits 1 at the first failure. Everything
listens on 127.0.0.1.
"""

import argparse
import http.server
import io
import os
import shutil
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
import zlib
from email import policy
from email.message import EmailMessage

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

TOKEN = "console-browser-token-" + uuid.uuid4().hex
HERE = os.path.dirname(os.path.abspath(__file__))


class Failed(Exception):
    pass


def check(name, ok, detail=""):
    if not ok:
        raise Failed(f"{name}: {detail}" if detail else name)
    print(f"ok   - {name}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, secs, what):
    deadline = time.time() + secs
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise Failed(f"timed out after {secs}s waiting for {what}")


class Counter:
    """An HTTP server on 127.0.0.1 that counts every request it gets: the
    hostile HTML points its images, script and styles here."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def tiny_pe():
    """The smallest bytes that pass for a Windows program."""
    b = bytearray(512)
    b[:2] = b"MZ"
    b[0x3C:0x40] = struct.pack("<I", 0x80)
    b[0x80:0x84] = b"PE\0\0"
    b[0x84:0x86] = b"\x4c\x01"
    return bytes(b)


def held_message(subject, html):
    """HTML plus a zip holding an .exe: quarantined by the attachment stage."""
    m = EmailMessage()
    m["From"] = "Mallory <a@sender.test>"
    m["To"] = "b@example.test"
    m["Subject"] = subject
    m.set_content("Please run the attached setup.\n")
    m.add_alternative(html, subtype="html")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("setup.exe", tiny_pe())
    m.add_attachment(buf.getvalue(), maintype="application", subtype="zip", filename="setup.zip")
    return m


def plain_message(subject):
    m = EmailMessage()
    m["From"] = "a@sender.test"
    m["To"] = "b@example.test"
    m["Subject"] = subject
    m.set_content("nothing to see\n")
    return m


def hostile_html(counter):
    """Would change the page title, add an element and call the counter if
    any of it ran or loaded."""
    u = counter.url
    return f"""<html><head><link rel="stylesheet" href="{u}/link.css"></head><body>
<p>Hello from the console test</p>
<script>parent.document.title='pwned'; document.title='pwned';
document.body.insertAdjacentHTML('beforeend', '<b id=pwned>pwned</b>'); fetch('{u}/fetch');</script>
<img src="{u}/img.png" alt="tracker"><img src="x" onerror="new Image().src='{u}/onerror'">
<div style="background:url({u}/css.png)">styled</div><iframe src="{u}/frame"></iframe>
</body></html>"""


def png_colours(path):
    """(width, height, distinct colours) of an 8-bit RGB/RGBA PNG, decoded
    with zlib (PNG spec §9 filters), so no imaging library is needed."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Failed(f"{path} is not a PNG")
    pos, idat = 8, b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise Failed(f"{path}: unexpected PNG format (depth {depth}, colour type {ctype})")
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), w * bpp
    prev, colours, i = bytearray(stride), set(), 0
    for _ in range(h):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        unfilter(kind, line, prev, bpp)
        colours.update(bytes(line[x:x + bpp]) for x in range(0, stride, bpp * 7))
        prev = line
    return w, h, len(colours)


def unfilter(kind, line, prev, bpp):
    for x in range(len(line)):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if kind == 1:
            line[x] = (line[x] + a) & 255
        elif kind == 2:
            line[x] = (line[x] + b) & 255
        elif kind == 3:
            line[x] = (line[x] + (a + b) // 2) & 255
        elif kind == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255


def check_png(path, name):
    size = os.path.getsize(path)
    w, h, colours = png_colours(path)
    check(f"screenshot {name}: {w}x{h}, {size // 1024} KB, {colours}+ colours",
          size > 10 * 1024 and colours >= 16, f"{path} looks blank ({size} bytes, {colours} colours)")


class World:
    """mxgate, the sink and the request counter, in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mxgate-console-")
        self.sink_dir = os.path.join(self.dir, "sink")
        os.makedirs(self.sink_dir)
        self.procs = []
        self.log = os.path.join(self.dir, "mxgate.log")
        self.counter = Counter()

    def start(self, binary):
        port_file = os.path.join(self.dir, "sink.port")
        self.spawn([sys.executable, os.path.join(HERE, "..", "docker", "sink.py"), "--listen", "127.0.0.1",
                    "--port", "0", "--dir", self.sink_dir, "--port-file", port_file], "sink.log")
        wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 10, "the sink to listen")
        sink = int(open(port_file).read())
        self.smtp, admin = free_port(), free_port()
        self.base = f"http://127.0.0.1:{admin}"
        cfg = os.path.join(self.dir, "mxgate.toml")
        with open(cfg, "w") as f:
            f.write(f"""[smtp]
listen = "127.0.0.1:{self.smtp}"
hostname = "mx.console.test"
[relay]
domains = ["example.test"]
downstream = "127.0.0.1:{sink}"
tls = "none"
[storage]
path = "{self.dir}/data"
[admin]
listen = "127.0.0.1:{admin}"
token = "{TOKEN}"
[scan]
stages = ["attachment"]
""")
        self.spawn([binary, "serve", "--config", cfg], "mxgate.log")
        wait_for(lambda: self.reachable(admin), 30, "mxgate's admin listener")

    def spawn(self, argv, log):
        self.procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                           stderr=open(os.path.join(self.dir, log), "w")))

    @staticmethod
    def reachable(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def send(self, msg):
        """Sends over SMTP; returns the final DATA reply text."""
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("a@sender.test")
            s.rcpt("b@example.test")
            code, reply = s.data(msg.as_bytes(policy=policy.SMTP))
            if code != 250:
                raise Failed(f"SMTP DATA answered {code} {reply!r}")
            return reply.decode()

    def delivered(self):
        names = sorted(n for n in os.listdir(self.sink_dir) if n.endswith(".eml"))
        return [open(os.path.join(self.sink_dir, n), "rb").read() for n in names]

    def close(self):
        self.counter.close()
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()

    def log_tail(self):
        try:
            return "".join(open(self.log, errors="replace").readlines()[-30:])
        except OSError:
            return ""


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,900", "--no-first-run", "--disable-extensions"]:
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)


def full_page(d, path):
    """A screenshot of the whole page: the window grows to the page's height."""
    height = d.execute_script("return document.documentElement.scrollHeight")
    d.set_window_size(1280, min(height + 150, 4000))
    d.save_screenshot(path)
    d.set_window_size(1280, 900)


def run(world, d, shots):
    wait = WebDriverWait(d, 30)
    base, tag = world.base, uuid.uuid4().hex[:8]
    first, other = f"Quarterly invoice {tag}", f"Shipping notice {tag}"
    for subject in (first, other):
        reply = world.send(held_message(subject, hostile_html(world.counter)))
        check(f"'{subject}' accepted over SMTP", "queued as" in reply, reply)

    d.get(base + "/console/")
    check("without a session the console shows the login page", d.current_url.endswith("/console/login"), d.current_url)
    d.find_element(By.NAME, "secret").send_keys(TOKEN)
    d.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "table.list")))
    rows = d.find_element(By.CSS_SELECTOR, "table.list").text
    check("login with the token shows both held messages", first in rows and other in rows, rows)

    box = d.find_element(By.NAME, "subject")
    box.send_keys("invoice " + tag)
    d.find_element(By.CSS_SELECTOR, "form.search button[type=submit]").click()
    wait.until(EC.url_contains("subject=invoice"))
    rows = d.find_element(By.CSS_SELECTOR, "table.list").text
    check("search by subject finds only the matching message", first in rows and other not in rows, rows)

    title_before = None
    d.find_element(By.LINK_TEXT, first).click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), first))
    title_before = d.title
    reasons = d.find_element(By.CSS_SELECTOR, "table.reasons").text
    check("the message page shows why it was held", "ATTACHMENT_EXECUTABLE" in reasons and "setup.exe" in reasons,
          reasons)
    wait.until(EC.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe")))
    wait.until(lambda drv: drv.execute_script("return document.readyState") == "complete")
    body = d.find_element(By.TAG_NAME, "body").text
    pwned = d.find_elements(By.ID, "pwned")
    d.switch_to.default_content()
    check("the HTML preview shows the message's text", "Hello from the console test" in body, body)
    check("no script ran in the preview", not pwned and d.title == title_before and "pwned" not in d.title, d.title)
    check("the preview loaded nothing remote (0 requests to the counter)", world.counter.hits == [],
          world.counter.hits)
    full_page(d, os.path.join(shots, "message.png"))
    check_png(os.path.join(shots, "message.png"), "message page")

    # Confirm dialogs: dismissing one sends nothing.
    d.find_element(By.CSS_SELECTOR, "form[action$='/delete'] button").click()
    wait.until(EC.alert_is_present()).dismiss()
    check("dismissing the confirm leaves the message held",
          not d.find_elements(By.CSS_SELECTOR, ".flash") and "held" in d.find_element(By.CSS_SELECTOR, "dl.fields").text)
    d.find_element(By.CSS_SELECTOR, "form[action$='/release'] button").click()
    wait.until(EC.alert_is_present()).accept()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".flash")))
    flash = d.find_element(By.CSS_SELECTOR, ".flash").text
    check("Release shows the result as a flash", flash.startswith("Released"), flash)
    wait_for(lambda: len(world.delivered()) >= 1, 30, "the released message downstream")
    world.send(plain_message(f"after {tag}"))
    wait_for(lambda: len(world.delivered()) >= 2, 30, "a later message downstream")
    copies = [m for m in world.delivered() if first.encode() in m]
    check("downstream got exactly one copy of the released message", len(copies) == 1, f"{len(copies)} copies")
    check("the copy names who released it", b"X-Mxgate-Released: by console:token" in copies[0])

    for i in range(3):
        world.send(held_message(f"Bulk {tag} no. {i}", "<p>bulk</p>"))
    d.get(base + "/console/?status=all")
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "table.list")))
    d.save_screenshot(os.path.join(shots, "list.png"))
    check_png(os.path.join(shots, "list.png"), "desktop list")
    d.get(base + f"/console/?subject=Bulk+{tag}")
    n = len(d.find_elements(By.CSS_SELECTOR, "table.list tbody tr"))
    check("the three bulk messages are listed", n == 3, f"{n} rows")
    d.find_element(By.ID, "select-all").click()
    d.find_element(By.CSS_SELECTOR, "button[value=delete]").click()
    alert = wait.until(EC.alert_is_present())
    question = alert.text
    alert.accept()
    check("the bulk confirm counts the selection", "3 selected messages" in question, question)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".flash")))
    flash = d.find_element(By.CSS_SELECTOR, ".flash").text
    check("select all + Delete deletes the three", flash == "Deleted 3 messages.", flash)
    d.get(base + "/console/")
    rows = d.find_element(By.TAG_NAME, "main").text
    check("only the untouched message is still held", other in rows and "Bulk" not in rows and first not in rows, rows)

    d.set_window_size(390, 844)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    for path, name in [("/console/?status=all", "list"), ("/console/", "message")]:
        d.get(base + path)
        if name == "message":
            d.find_element(By.LINK_TEXT, other).click()
            wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), other))
        sw, iw = d.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        check(f"mobile {name}: no sideways scrolling at 390 px (scrollWidth {sw}, innerWidth {iw})",
              iw <= 400 and sw <= iw + 1)
        d.save_screenshot(os.path.join(shots, f"mobile-{name}.png"))
        check_png(os.path.join(shots, f"mobile-{name}.png"), f"mobile {name}")
    d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    d.find_element(By.CSS_SELECTOR, "form.logout button").click()
    wait.until(EC.url_contains("/console/login"))
    d.get(base + "/console/")
    check("after logging out the console asks for a login again", d.current_url.endswith("/console/login"))

    # The counter does count what the browser asks it for: its zero was real.
    d.get(world.counter.url + "/direct")
    wait_for(lambda: "/direct" in world.counter.hits, 10, "the counter to see a direct request")
    check("the request counter sees a direct browser request", True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/mxgate")
    ap.add_argument("--shots", default=os.environ.get("CONSOLE_SHOTS", "/tmp/mxgate-console-shots"))
    args = ap.parse_args()
    os.makedirs(args.shots, exist_ok=True)
    world, driver = None, None
    try:
        world = World()
        world.start(os.path.abspath(args.bin))
        driver = browser()
        run(world, driver, args.shots)
    except Exception as e:  # a failed check, a Selenium timeout, a crash: one clear line
        print(f"FAIL - {e}" if isinstance(e, Failed) else f"FAIL - {type(e).__name__}: {e}", flush=True)
        if driver:
            print(f"browser at {driver.current_url}, title {driver.title!r}")
        if world:
            print("mxgate log (last lines):\n" + world.log_tail())
        return 1
    finally:
        if driver:
            driver.quit()
        if world:
            world.close()
            shutil.rmtree(world.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

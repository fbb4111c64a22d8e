"""(6) One 100 MB file streamed to disk by worker.egress.download.download, in a fresh process whose
peak RSS (VmHWM) is read before and after: the growth is what the download itself costs."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench.jobs import VOICE
from bench.stack import API_KEY, ROOT, Stack

PROBE = """
import json, sys, time
from pathlib import Path
import requests
from worker.egress.download import download
from bench.stack import rss_bytes
import os
url, out = sys.argv[1], Path(sys.argv[2])
s = requests.Session()
before = rss_bytes(os.getpid(), "VmHWM")
t = time.perf_counter()
got = download(s, url, out, "big", max_bytes=1 << 30, timeout=60, allow_hosts=("127.0.0.1",))
secs = time.perf_counter() - t
print(json.dumps({"bytes": got.bytes, "seconds": secs,
                  "hwm_growth": rss_bytes(os.getpid(), "VmHWM") - before}))
"""


def run(size: int = 100 * 2**20) -> dict[str, Any]:
    with Stack("download") as st:
        st.sandbox.configure(lifecycle={"mode": "immediate"}, audio_bytes=size)
        resp = st.sandbox.http.post(
            f"{st.sandbox.url}/api/open/v3/audio/create",
            json={"input_text": "one big file", "voice_id": VOICE, "rate": "100%"},
            headers={"x-api-key": API_KEY},
        )
        url = resp.json()["data"]["url"]
        out = subprocess.run(
            [sys.executable, "-c", PROBE, url, str(st.audio_dir)],
            cwd=ROOT, capture_output=True, text=True, check=True, timeout=300,
        )  # fmt: skip
        figures = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "mb": round(figures["bytes"] / 2**20, 1),
        "seconds": round(figures["seconds"], 2),
        "mb_per_s": round(figures["bytes"] / 2**20 / figures["seconds"], 1),
        "peak_rss_growth_mb": round(figures["hwm_growth"] / 2**20, 2),
    }

"""The embedded PostgreSQL: several processes attach to one data directory at once."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

ATTACH = """
import sys, time, psycopg
from ccanalytics.db import embedded
url = embedded.start(sys.argv[1], database="shared")
libpq = url.replace("postgresql+psycopg://", "postgresql://")
with psycopg.connect(libpq, autocommit=True) as conn:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(1)")
        conn.execute("CREATE TABLE IF NOT EXISTS hits (pid int)")
    conn.execute("INSERT INTO hits VALUES (%s)", (int(sys.argv[2]),))
    time.sleep(float(sys.argv[3]))
    print(conn.execute("SELECT count(*) FROM hits").fetchone()[0])
"""


def postmaster_running(pg_data: Path) -> bool:
    pid_file = pg_data / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    return psutil.pid_exists(pid) and "postgres" in psutil.Process(pid).name()


@pytest.mark.slow
def test_processes_share_one_embedded_server_and_the_last_one_stops_it():
    root = Path(tempfile.mkdtemp(prefix="cca-embedded-"))
    try:
        _share_and_stop(root / "pg")  # pg does not exist yet: the processes race to create it
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _share_and_stop(pg_data: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ATTACH, str(pg_data), str(i), "1.5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1][-2000:] for o in outputs]
    # each saw its own insert and, thanks to the sleep, most of the others'
    counts = [int(o[0].strip()) for o in outputs]
    assert max(counts) == 4 and min(counts) >= 1
    deadline = time.time() + 20
    while postmaster_running(pg_data) and time.time() < deadline:
        time.sleep(0.2)
    assert not postmaster_running(pg_data), "the last process to leave should stop the server"
    # a later process starts it again on the same data
    again = subprocess.run(
        [sys.executable, "-c", ATTACH, str(pg_data), "9", "0"], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip() == "5"

"""One logging path: every edge module logs through the "edge" loggers, and the commands print them
as `prog: message` on stderr; when stderr is systemd's journal stream (JOURNAL_STREAM names it),
each line carries its syslog priority so journald keeps it (`journalctl -p warning`)."""

import logging
import os
import subprocess
import sys

from edge.log import StderrHandler, setup


def _edge_run(args, tmp_path, journal: bool):
    err = tmp_path / "stderr"
    with open(err, "w") as f:
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if journal:  # what systemd sets when stdout/stderr go to the journal: that stream's device and inode
            st = os.fstat(f.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        res = subprocess.run([sys.executable, "-m", "edge.cli", *args], stdout=subprocess.DEVNULL, stderr=f,
                             env=env, timeout=120)
    return res.returncode, err.read_text().splitlines()


def test_lines_carry_the_journal_priority_only_when_stderr_is_the_journal(tmp_path):
    code, lines = _edge_run(["--frames", "2"], tmp_path, journal=True)
    assert code == 0
    ready = [x for x in lines if "ready: camera cam0" in x]
    assert ready and ready[0].startswith("<6>edge-run: ready:"), lines
    code, lines = _edge_run(["--frames", "-1"], tmp_path, journal=True)
    assert code == 2 and lines == ["<3>edge-run: error: <command line>: --frames: expected a number >= 0, got -1"]
    code, lines = _edge_run(["--frames", "-1"], tmp_path, journal=False)
    assert code == 2 and lines == ["edge-run: error: <command line>: --frames: expected a number >= 0, got -1"]


def test_a_journal_stream_of_another_file_is_not_this_stderr(tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.write_text("")
    st = os.stat(other)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    assert StderrHandler("x").journal is False  # inherited from a parent whose stderr went to the journal


def test_module_loggers_print_under_the_commands_name_on_the_current_stderr(capsys):
    setup("edge-run")
    logging.getLogger("edge.pipeline").warning("source reopened after %d attempt(s)", 1)
    logging.getLogger("edge.outputs.delivery").info("info too")
    logging.getLogger("other").warning("not ours")  # other libraries' loggers are not routed here
    assert capsys.readouterr().err.splitlines() == ["edge-run: source reopened after 1 attempt(s)",
                                                    "edge-run: info too"]

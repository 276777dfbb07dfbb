"""Killing an extraction mid-slide and re-running gives the same files as an uninterrupted run."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mstar.features.extract import extract_features

ENC = "timm:test_vit"

# Runs the extraction in a child process that SIGKILLs itself while writing the second slide's features:
# a half-written temporary is left behind and the third slide is mid-way through the encoder.
KILLER = textwrap.dedent("""
    import os, signal, sys
    import mstar.features.writer as w
    from mstar.utils.atomic import atomic_path
    from mstar.features.extract import extract_features

    real, calls = w.write_features_file, []

    def dying_write(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            tmp = atomic_path(path).__enter__()
            tmp.write_bytes(b"half-written")
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, *args, **kwargs)

    w.write_features_file = dying_write
    extract_features(sys.argv[1], "timm:test_vit", batch_size=2, workers=1, save_pt=True, show_progress=False)
""")


def _outputs(work: Path) -> dict[str, bytes]:
    files = sorted([*(work / "features").rglob("*.h5"), *(work / "pt_files").rglob("*.pt")])
    return {str(p.relative_to(work)): p.read_bytes() for p in files}


@pytest.mark.slow
def test_kill_mid_slide_then_resume_gives_identical_files(work, tmp_path):
    extract_features(work, ENC, batch_size=2, workers=1, save_pt=True, show_progress=False)
    uninterrupted = _outputs(work)
    assert len(uninterrupted) == 6
    for sub in ("features", "pt_files"):
        for p in (work / sub).rglob("*"):
            if p.is_file():
                p.unlink()

    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(script), str(work)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == -9, proc.stderr[-2000:]
    folder = work / "features" / "timm-test_vit"
    finished = sorted(p.name for p in folder.glob("*.h5") if not p.name.startswith("."))
    stale = [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".claims"]
    assert len(finished) == 1 and len(stale) == 1  # one slide done, one half-written temporary

    extract_features(work, ENC, batch_size=2, workers=1, save_pt=True, show_progress=False)
    resumed = _outputs(work)
    assert resumed.keys() == uninterrupted.keys()
    assert all(resumed[k] == uninterrupted[k] for k in resumed)  # byte-identical
    assert not [p for p in folder.iterdir() if p.name.startswith(".") and p.name != ".claims"]

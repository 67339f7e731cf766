"""Progress bars that ``TQDM_DISABLE`` silences."""


def test_tqdm_disable_silences_the_bars_that_are_on_by_default():
    import os
    import subprocess
    import sys

    code = "from adalink.progress import progress_bar as p; print(p(range(2)).disable, p(enabled=False).disable)"
    env = {**os.environ, "TQDM_DISABLE": "1"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.split() == [
        "True",
        "True",
    ]
    env.pop("TQDM_DISABLE")
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.split()
    assert shown == ["False", "True"]

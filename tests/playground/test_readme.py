"""Every file the README's commands name exists in a fresh clone (built outputs excepted)."""

from __future__ import annotations

import re
from pathlib import Path

import av

REPO_ROOT = Path(__file__).resolve().parents[2]
# Folders that commands create (the playground data, checkpoints, results) are not part of a clone.
BUILT = ("playground/data/", "checkpoints/", "eval_results/", "out/")


def readme_paths() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", text, flags=re.S))
    names = re.findall(r"(?<![\w/.-])((?:playground|scripts|benchmarks|llava|tests)/[\w./-]+\.\w+)", blocks)
    return sorted({name for name in names if not name.startswith(BUILT)})


def test_readme_commands_name_files_of_the_repository():
    paths = readme_paths()
    assert "playground/videos/red_square_moves_right.mp4" in paths and "scripts/sft_ov_encoder.sh" in paths
    missing = [path for path in paths if not (REPO_ROOT / path).is_file()]
    assert not missing, f"README commands name files that a clone does not have: {missing}"


def test_the_shipped_demo_clip_decodes():
    with av.open(str(REPO_ROOT / "playground" / "videos" / "red_square_moves_right.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 24 and frames[0].shape == (128, 160, 3)

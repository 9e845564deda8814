"""Shot splitting: cuts found within 2 frames; long shots split; short shots flagged."""

from __future__ import annotations

import numpy as np

from kinema.data.io import decode, probe
from kinema.data.shots import ShotConfig, ShotSplitter


def _shots(path: str, config: ShotConfig):
    info = probe(path)
    splitter = ShotSplitter(info.fps, config)
    shots = []
    for frame in decode(info):
        shots += splitter.push(frame.index, frame.time, frame.small)
    return shots + splitter.finish(), splitter


def test_cuts_are_found_within_two_frames(cut_video):
    path, cuts = cut_video
    shots, _ = _shots(path, ShotConfig(min_length=0.5, max_length=20.0))
    found = [s.start for s in shots[1:]]
    assert len(found) == len(cuts), found
    assert all(abs(f - c) <= 2 for f, c in zip(found, cuts)), found
    assert shots[0].start == 0 and shots[-1].end == 200


def test_long_shots_are_split_evenly_into_pieces_at_most_max_length(cut_video):
    path, _ = cut_video
    shots, splitter = _shots(path, ShotConfig(min_length=0.5, max_length=1.0))
    lengths = np.array([splitter.time_of(s.end) - splitter.time_of(s.start) for s in shots])
    assert (lengths <= 1.0 + 1e-6).all()
    assert len(shots) >= 8  # 2.48 s + 3.0 s + 2.52 s in pieces of <= 1 s
    assert [s.end for s in shots[:-1]] == [s.start for s in shots[1:]]  # contiguous, no gaps

"""benchmarks/blink_motion.py's scoring on synthetic signals: what its threshold-free figures mean.

Seconds, no video: the transient dip, the lid-burst pattern, peak picking, the sweep over
thresholds and the canonical eye band. The real-video figures are in docs/blink-research.md.
"""

import numpy as np
import pytest

pytest.importorskip("cv2")

from benchmarks import blink_motion as bm  # noqa: E402

FPS = 30.0


def noisy(n=300, seed=0, sd=0.01):
    return 1.0 + np.random.default_rng(seed).normal(0, sd, n)


def test_a_short_dip_scores_high_and_a_lasting_step_does_not():
    x = noisy()
    x[150:155] = 0.6  # a 0.17 s closure
    x[220:] -= 0.4  # looking down from frame 220 on: not a transient
    z = bm.dip(x, FPS)
    top = bm.peaks(z, FPS)
    assert 150 <= top[0][0] <= 154 and top[0][1] > 10
    assert all(s < 0.25 * top[0][1] for i, s in top[1:]), top[:4]


def test_a_lid_burst_down_then_up_is_a_pattern_a_one_way_burst_is_not():
    v = np.random.default_rng(1).normal(0, 0.02, 300)
    v[100:102] += 0.5  # lids down ...
    v[106:108] -= 0.5  # ... and up again 0.2 s later
    v[200:202] += 0.5  # down and staying down
    z = bm.pattern(v, FPS)
    top = bm.peaks(z, FPS)
    assert 100 <= top[0][0] <= 102
    assert np.nanmax(z[195:205]) < 0.2 * top[0][1]


def test_peaks_are_apart_and_highest_first():
    z = np.zeros(100)
    z[[10, 12, 40, 80]] = [3.0, 5.0, 4.0, -1.0]
    assert bm.peaks(z, FPS) == [(12, 5.0), (40, 4.0)]  # 10 is within 0.2 s of 12; negatives never


def test_sweep_counts_blinks_found_under_each_false_limit():
    z = np.zeros(300)
    z[[50, 120, 200, 260]] = [9.0, 8.0, 7.0, 6.0]  # two blinks at 50 and 200, false at 120 and 260
    spans = {"v": [(49, 52), (199, 203), (280, 284)]}
    best = bm.sweep({"v": z}, {"v": FPS}, spans)
    assert best[0] == 1 and best[1] == 2 and best[7] == 2
    assert bm.ranks({"v": z}, {"v": FPS}, spans) == ["1", "3", "-"]


def test_the_band_levels_the_eyes_at_their_fixed_places():
    pts = np.zeros((68, 2))
    pts[36:42] = (100.0, 200.0)
    pts[42:48] = (160.0, 230.0)  # tilted, 67 px apart
    m = bm.band_transform(pts)
    for centre, want in (((100, 200), (bm.EYE_X[0], bm.EYE_Y)), ((160, 230), (bm.EYE_X[1], bm.EYE_Y))):
        got = m @ np.array([*centre, 1.0])
        assert np.allclose(got, want, atol=1e-6)


def test_return_signal_is_positive_for_a_transient_only():
    rng = np.random.default_rng(2)
    open_band = rng.uniform(0, 255, (bm.BAND_H, bm.BAND_W)).astype(np.float32)
    shut_band = rng.uniform(0, 255, (bm.BAND_H, bm.BAND_W)).astype(np.float32)
    bands = [open_band.copy() for _ in range(60)] + [shut_band.copy() for _ in range(60)]
    bands[20] = shut_band.copy()  # one transient at 20; a lasting change at 60
    r = bm.return_signal(bands, FPS)
    assert r["R"][20] > 0.5 and r["L"][20] > 0.5
    assert np.nanmax(r["R"][50:70]) <= 0.05


def test_no_dip_score_without_open_eyes_on_both_sides():
    x = noisy()
    x[3:6] = 0.5  # a face's first frames: nothing before to compare with
    z = bm.dip(x, FPS)
    assert np.isnan(z[:8]).all()
    assert np.isnan(z[-8:]).all()

"""The skeleton's schedules: which stage a step belongs to, and the learning rate at each step."""

from dataclasses import dataclass

import pytest

from kinema.train.loop import lr_at, stage_at


@dataclass(frozen=True)
class Stage:
    name: str
    steps: int


def test_stages_run_in_order_and_the_last_one_continues():
    stages = [Stage("a", 2), Stage("b", 3)]
    assert [stage_at(stages, s).name for s in range(7)] == ["a", "a", "b", "b", "b", "b", "b"]


def test_learning_rate_warms_up_holds_and_cools_down():
    # 10 steps: warm-up over 4, cool-down over the last 3.
    got = [lr_at(s, 1.0, warmup=4, total=10, cooldown=3) for s in range(10)]
    assert got == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 2 / 3, 1 / 3])
    assert lr_at(0, 2.0, warmup=0) == 2.0

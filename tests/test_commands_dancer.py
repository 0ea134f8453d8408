"""Which dancer each command picks: the board's winner by default, the model where only it can follow."""

from __future__ import annotations

import argparse

import pytest

from opendance.commands.dancer import DANCERS, DEFAULT_DANCER, resolve_dancer
from opendance.commands.main import build_parser
from opendance.errors import InputError


def _args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.mark.parametrize("argv", [["play", "s.wav"], ["demo"], ["live"],
                                  ["generate", "s.wav", "-o", "o.bvh"]])
def test_every_dancing_command_defaults_to_the_board_winner(argv):
    assert DEFAULT_DANCER in DANCERS
    assert resolve_dancer(_args(argv)) == DEFAULT_DANCER


@pytest.mark.parametrize("argv,dancer", [
    (["play", "s.wav", "--dancer", "model"], "model"),
    (["play", "s.wav", "--groove-only"], "procedural"),
    (["generate", "s.wav", "-o", "o.bvh", "--dancer", "procedural"], "procedural"),
    (["generate", "s.wav", "-o", "o.bvh", "--model", "m.safetensors"], "model"),
    (["generate", "s.wav", "-o", "o.bvh", "--traj", "path.csv"], "model"),
    (["generate", "s.wav", "-o", "o.bvh", "--keyframes", "k.json"], "model"),
    (["generate", "s.wav", "-o", "o.bvh", "--traj", "path.csv", "--dancer", "procedural"], "procedural"),
])
def test_a_named_dancer_or_a_model_only_condition_decides(argv, dancer):
    assert resolve_dancer(_args(argv)) == dancer


def test_groove_only_with_the_model_named_is_refused():
    with pytest.raises(InputError, match="contradict"):
        resolve_dancer(_args(["play", "s.wav", "--groove-only", "--dancer", "model"]))

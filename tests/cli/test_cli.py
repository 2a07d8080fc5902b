"""The ``drkit`` command line: reinforce, info, verify, train, demo, their ``--json`` output, the
global options, exit codes and help texts."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import drkit
from drkit.cli import build_parser, store_commands
from drkit.cli.common import HelpFormatter
from drkit.cli.main import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, main

TESTS = Path(__file__).parents[1]


@pytest.fixture()
def npz_data(tmp_path: Path) -> str:
    ds = drkit.load_dataset("digits").subset(np.arange(40))
    path = tmp_path / "digits40.npz"
    np.savez(path, x=ds.images[:, 0], y=ds.labels)
    return f"npz:{path}"


@pytest.fixture(autouse=True)
def _teachers_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))


def _reinforce(data: str, out: Path, *extra: str) -> int:
    return main(["reinforce", data, "--teacher", "python:_cli_teachers:tiny", "--num-augs", "2",
                 "--topk", "3", "--num-workers", "0", "--out", str(out), "-q", *extra])


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command words, parser) of every leaf subcommand, synth's included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))
            return
    yield prefix, parser


COMMANDS = dict(_commands(build_parser()))


def test_reinforce_info_verify(npz_data, tmp_path, capsys):
    out = tmp_path / "store"
    assert _reinforce(npz_data, out, "--teacher", "python:_cli_teachers:tiny") == 0
    text = capsys.readouterr().out
    assert "bytes per stored augmentation" in text and "of the source dataset" in text

    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_samples"] == 40 and info["num_augs"] == 2 and info["topk"] == 3
    assert len(info["teacher"]["members"]) == 2  # two --teacher flags form an ensemble
    assert main(["info", str(out)]) == 0
    assert "randaugment" in capsys.readouterr().out

    assert main(["verify", str(out), "--data", npz_data]) == 0
    assert "dataset fingerprint verified" in capsys.readouterr().out
    # rerunning a complete store computes nothing
    assert _reinforce(npz_data, out, "--teacher", "python:_cli_teachers:tiny") == 0
    assert "already complete" in capsys.readouterr().out


def test_json_output_is_the_only_thing_on_stdout(npz_data, tmp_path, capsys):
    """Without -q, progress and the teacher summary go to stderr; stdout parses as one JSON value."""
    out = tmp_path / "store"
    assert main(["reinforce", npz_data, "--teacher", "python:_cli_teachers:tiny", "--num-augs", "2", "--topk", "3",
                 "--num-workers", "0", "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    r = json.loads(captured.out)
    assert r["num_samples"] == 40 and r["num_augs"] == 2 and r["path"] == str(out)
    assert r["run_stats"]["records_computed"] == 80 and r["wall_seconds"] > 0
    assert "teachers" in captured.err and "reinforce: 80/80 (100%)" in captured.err  # plain lines: not a TTY

    assert main(["verify", str(out), "--data", npz_data, "--json"]) == 0
    v = json.loads(capsys.readouterr().out)
    assert v["ok"] is True and v["checked"] == ["checksums", "records", "dataset fingerprint"]
    assert v["records"] == 80 and v["dataset_checked"] is True

    run = tmp_path / "run"
    assert main(["train", npz_data, "--mode", "dr", "--store", str(out), "--arch", "smallcnn-4", "--epochs", "1",
                 "--eval-data", npz_data, "--out", str(run), "--json"]) == 0
    captured = capsys.readouterr()
    m = json.loads(captured.out)
    assert m["config"]["mode"] == "dr" and m["config"]["arch"] == "smallcnn-4"
    assert set(m["final"]) >= {"top1", "nll", "ece", "brier"} and m["train_seconds"] > 0 and m["complete"]
    assert "dr smallcnn-4 1/1: " in captured.err  # the epoch's progress line

    assert main(["compare", str(run), "--data", npz_data, "--no-corruptions", "--no-shifts", "--out",
                 str(tmp_path / "report"), "--json", "-q"]) == 0
    c = json.loads(capsys.readouterr().out)
    assert len(c["rows"]) == 1 and c["paths"]["html"].endswith("report.html")
    assert main(["audit", str(out), "--data", npz_data, "--top", "2", "--out", str(tmp_path / "audit"), "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert a["num_samples"] == 40 and a["paths"]["html"].endswith("audit.html")


def test_verify_against_another_dataset_fails_with_exit_1(npz_data, tmp_path, capsys):
    out = tmp_path / "store"
    assert _reinforce(npz_data, out) == 0
    capsys.readouterr()
    assert main(["verify", str(out), "--data", "digits"]) == EXIT_ERROR == 1
    err = capsys.readouterr().err
    assert "error" in err and "samples" in err
    # --json: the verdict on stdout, the error on stderr, the same exit code
    assert main(["verify", str(out), "--data", "digits", "--json"]) == 1
    captured = capsys.readouterr()
    v = json.loads(captured.out)
    # the store's 40 digits are the first 40 of these 1,437 (matched by index key): the rest are not in it
    assert v["ok"] is False and v["error_type"] == "SampleMismatchError" and "samples" in v["error"]
    assert (v["match"]["matched"], v["match"]["missing_in_store"]) == (40, 1437 - 40)
    assert "drkit verify: error:" in captured.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--topk", "0"], "topk must be a positive integer"),
        (["--num-augs", "-1"], "num_augs must be a positive integer"),
        (["--policy", "autoaugment"], "unknown policy"),
    ],
)
def test_bad_settings_exit_1_and_write_nothing(npz_data, tmp_path, capsys, extra, message):
    out = tmp_path / "store"
    assert _reinforce(npz_data, out, *extra) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_wrong_teacher_width_is_a_clear_error(npz_data, tmp_path, capsys):
    out = tmp_path / "store"
    code = main(["reinforce", npz_data, "--teacher", "python:_cli_teachers:wrong_width", "--out", str(out), "-q",
                 "--num-workers", "0"])
    assert code == 1
    assert "11 outputs per image but the dataset has 10 classes" in capsys.readouterr().err.replace("(11,)", "11")
    assert not out.exists()


def test_unknown_dataset_and_teacher(tmp_path, capsys):
    assert main(["reinforce", "cifar10", "--teacher", "python:_cli_teachers:tiny", "--out", str(tmp_path / "a")]) == 1
    assert "unknown dataset" in capsys.readouterr().err
    assert main(["reinforce", "digits", "--teacher", "hub:resnet", "--out", str(tmp_path / "b")]) == 1
    assert "unknown teacher" in capsys.readouterr().err


def test_info_on_a_directory_that_is_not_a_store(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 1
    assert "not a drkit store" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["info"], ["info", "x", "--no-such-option"], ["frobnicate"],
                                  ["train", "digits", "--out", "r", "--epochs", "many"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == EXIT_USAGE == 2
    assert "usage: drkit" in capsys.readouterr().err


@pytest.mark.slow
def test_python_m_drkit_cli_runs_and_exits_2_on_a_usage_error():
    r = subprocess.run([sys.executable, "-m", "drkit.cli", "verify"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "the following arguments are required: store" in r.stderr


def test_ctrl_c_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_commands, "_cmd_info", interrupted)
    assert main(["info", "somewhere"]) == EXIT_INTERRUPTED == 130
    assert "interrupted; rerun the same command to resume" in capsys.readouterr().err


def test_exit_codes_are_documented_in_the_help():
    text = build_parser().format_help()
    assert "exit codes:" in text
    for code in ("0", "1", "2", "130"):
        assert f"\n  {code} " in text


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("flag", ["-v", "--verbose", "-q", "--quiet"])
def test_global_options_before_or_after_every_command(command, where, flag):
    """`drkit -v train ...` and `drkit train ... -v` both set it; the other option stays off (the
    subparser's default must not overwrite what was given before the command)."""
    positional = [a for a in COMMANDS[command]._actions if not a.option_strings]
    required = [o for a in COMMANDS[command]._actions if a.required and a.option_strings
                for o in (a.option_strings[0], "x")]
    rest = [*command, *["x"] * len(positional), *required]
    argv = [flag, *rest] if where == "before" else [*rest, flag]
    args = build_parser().parse_args(argv)
    verbose = flag in ("-v", "--verbose")
    assert args.verbose is verbose and args.quiet is not verbose


def test_both_global_options_in_both_places():
    args = build_parser().parse_args(["-v", "info", "STORE", "-q"])
    assert args.verbose and args.quiet and args.store == "STORE"
    args = build_parser().parse_args(["info", "STORE"])
    assert args.verbose is False and args.quiet is False


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
def test_every_command_has_json_and_help_says_each_default_once(command):
    parser = COMMANDS[command]
    assert "--json" in parser._option_string_actions, f"drkit {' '.join(command)} has no --json"
    formatter = HelpFormatter("drkit")
    for action in parser._actions:
        text = formatter._expand_help(action) if action.help else ""
        assert text.count("(default") + text.count("; default") <= 1, text
        if action.option_strings and not any(action.default is d for d in (None, False, argparse.SUPPRESS)):
            assert "default" in text, f"{action.option_strings[0]} does not show its default {action.default!r}"
    assert parser.format_help()  # every help string formats (no stray %)


def test_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--teacher-epochs", "1", "--num-augs", "2", "--student-epochs", "1", "-q"]) == 0
    text = capsys.readouterr().out
    assert "ensemble" in text and "reinforced store" in text
    store = drkit.Store.open(out / "digits+", dataset=drkit.load_dataset("digits"))
    assert store.num_augs == 2 and len(store.settings["teacher"]["members"]) == 3
    # cached: the second run loads the teachers instead of training them and reuses the store
    assert main(["demo", "--out", str(out), "--teacher-epochs", "1", "--num-augs", "2", "--student-epochs", "1",
                 "-q", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["store"]["num_augs"] == 2 and len(r["teachers"]) == 3 and set(r["students"]) == {"erm", "dr"}

"""The README's set-up commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci_commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                   if line.startswith("pip install")]
    assert ci_commands == ['pip install torch==2.13.0 -e ".[test]" && python -m pytest']
    assert ci_commands[0] in readme


def test_readme_main_command_runs_the_demo_subcommand():
    readme = (ROOT / "README.md").read_text()
    assert "pip install torch==2.13.0 -e . && sid4ds demo" in readme
    from sid4ds.cli import build_parser

    args = build_parser().parse_args(["demo"])
    assert args.command == "demo" and args.n_samples == 1000
